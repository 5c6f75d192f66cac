import { chmod, chown, mkdir, readdir, rm, stat } from 'node:fs/promises';
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
  const existing = await stat(path).catch((error: NodeJS.ErrnoException) => {
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
        `--pgdata ${path} exists and is not a directory: restore never overwrites; choose an empty or new directory`,
      );
    const entries = await readdir(path);
    if (entries.length > 0) {
      throw new PmsError(
        'PMS_ERR_TARGET_EXISTS',
        `--pgdata ${path} is not empty (${entries.length} entries, e.g. ${entries.slice(0, 3).join(', ')}): restore never overwrites a data directory; choose an empty or new directory`,
      );
    }
  }
  let osUser: string | undefined;
  if (process.getuid?.() === 0) {
    const owner = (await stat(path)).uid;
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
    await chown(path, uid, gid);
  }
  await chmod(path, 0o700);
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
