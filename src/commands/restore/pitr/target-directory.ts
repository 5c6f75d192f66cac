import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, rm } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { PmsError } from '../../../errors/catalogue.js';
import { runTool } from '../../../process/tool-process.js';

export interface PreparedDirectory {
  readonly path: string;
  readonly created: boolean;
  /** OS user that must own the files (we are root), else undefined (files are ours). */
  readonly osUser: string | undefined;
  /** Empties (or removes, if we created it) the directory after a failed restore. */
  discard(): Promise<void>;
}

/**
 * The restore target: created (0700) if absent, refused unless empty, because unpacking a
 * backup over an existing cluster would mix two clusters' files. As root, the directory is
 * handed to its non-root owner, or to `defaultOsUser` (postgres), which then does the unpacking:
 * PostgreSQL refuses to run as root and refuses a data directory it does not own.
 */
export async function prepareTargetDirectory(path: string, defaultOsUser = 'postgres'): Promise<PreparedDirectory> {
  if (!isAbsolute(path)) throw new PmsError('PMS_ERR_USAGE', `--pgdata ${JSON.stringify(path)} must be an absolute path`);
  let created = false;
  // lstat: a --pgdata that is a symbolic link would have us chown whatever it points to.
  const existing = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw new PmsError('PMS_ERR_USAGE', `cannot inspect --pgdata ${path} (${error.code ?? error.message})`, { cause: error });
  });
  if (existing === undefined) {
    await mkdir(path, { recursive: true, mode: 0o700 });
    created = true;
  } else {
    if (!existing.isDirectory())
      throw new PmsError(
        'PMS_ERR_TARGET_EXISTS',
        `--pgdata ${path} exists and is not a directory${existing.isSymbolicLink() ? ' (a symbolic link: give the real path)' : ''}: restore never overwrites; choose an empty or new directory`,
      );
    const entries = await readdir(path);
    if (entries.length > 0) {
      throw new PmsError(
        'PMS_ERR_TARGET_EXISTS',
        `--pgdata ${path} is not empty (${entries.length} entries, e.g. ${entries.slice(0, 3).join(', ')}): restore never overwrites a data directory; choose an empty or new directory`,
      );
    }
  }
  // Ownership and mode are set through one descriptor opened without following a link, so a
  // directory swapped for a link after the checks above is refused, not chowned.
  const directory = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW).catch((error: unknown) => {
    throw new PmsError(
      'PMS_ERR_TARGET_EXISTS',
      `--pgdata ${path} changed while it was being prepared (${(error as NodeJS.ErrnoException).code})`,
      {
        cause: error,
      },
    );
  });
  let osUser: string | undefined;
  try {
    if (process.getuid?.() === 0) {
      const owner = (await directory.stat()).uid;
      osUser = owner !== 0 ? (await runTool('id', ['-nu', String(owner)])).stdout.trim() : defaultOsUser;
      const uid = Number(
        (
          await runTool('id', ['-u', osUser]).catch((error: unknown) => {
            throw new PmsError(
              'PMS_ERR_CONFIG',
              `OS user ${osUser} does not exist: create it, or create --pgdata owned by the user that will run PostgreSQL`,
              { cause: error },
            );
          })
        ).stdout.trim(),
      );
      const gid = Number((await runTool('id', ['-g', osUser])).stdout.trim());
      await directory.chown(uid, gid);
    }
    await directory.chmod(0o700);
  } finally {
    await directory.close();
  }
  return {
    path,
    created,
    osUser,
    async discard() {
      if (created) {
        await rm(path, { recursive: true, force: true });
        return;
      }
      for (const entry of await readdir(path)) await rm(`${path}/${entry}`, { recursive: true, force: true });
    },
  };
}
