import { constants, lstatSync } from 'node:fs';
import { type FileHandle, open, unlink } from 'node:fs/promises';
import { PmsError } from '../errors/catalogue.js';

const { O_RDONLY, O_WRONLY, O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = constants;

export interface DataDirectory {
  readonly path: string;
  /** Owner of the directory: every file written here is given to it (when we are root). */
  readonly owner: { readonly uid: number; readonly gid: number };
  /** Appends to an existing regular file, or creates it (0600) when absent. */
  append(name: string, text: string): Promise<void>;
  /** Removes whatever the name is (a link itself, never its target) and creates a new file. */
  replace(name: string, content: string | Uint8Array): Promise<void>;
  /** Removes the name if it exists (a link itself, never its target). */
  remove(name: string): Promise<void>;
  /** Creates a new file; fails if the name exists in any form. */
  create(name: string, content: string | Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/**
 * Writes files into a directory that belongs to another OS user (a data directory unpacked
 * from a backup, owned by the server's user) without ever following a link planted there:
 *
 * - the directory is opened once (O_DIRECTORY | O_NOFOLLOW) and every file is reached through
 *   that descriptor (/proc/self/fd/N/name), so renaming a parent component afterwards changes
 *   nothing;
 * - files are opened with O_NOFOLLOW (a symbolic link fails with ELOOP) and O_NONBLOCK (a FIFO
 *   fails instead of hanging), then fstat'ed: only a regular file with one link, owned by the
 *   directory's owner, is written to;
 * - ownership is given with fchown on the open descriptor, never chown by path.
 *
 * A refusal is PMS_ERR_INTEGRITY: the directory holds something a data directory never does.
 */
export async function openDataDirectory(path: string): Promise<DataDirectory> {
  let handle: FileHandle;
  try {
    handle = await open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (error) {
    throw refusal(path, error);
  }
  const info = await handle.stat();
  const owner = { uid: info.uid, gid: info.gid };
  const at = (name: string): string => {
    if (name === '' || name === '.' || name === '..' || name.includes('/')) throw new Error(`not a file name: ${name}`);
    return `/proc/self/fd/${handle.fd}/${name}`;
  };

  async function giveToOwner(file: FileHandle): Promise<void> {
    if (process.getuid?.() === 0) await file.chown(owner.uid, owner.gid);
  }

  async function checkExisting(name: string, file: FileHandle): Promise<void> {
    const stat = await file.stat();
    const problem = !stat.isFile()
      ? 'is not a regular file'
      : stat.nlink !== 1
        ? `has ${stat.nlink} hard links`
        : stat.uid !== owner.uid
          ? `belongs to uid ${stat.uid}, not to the directory's owner (uid ${owner.uid})`
          : undefined;
    if (problem) {
      throw new PmsError(
        'PMS_ERR_INTEGRITY',
        `${path}/${name} ${problem}: refusing to write to it (a data directory holds only regular files and directories)`,
      );
    }
  }

  async function createExclusive(name: string, content: string | Uint8Array): Promise<void> {
    const file = await open(at(name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600).catch((error: unknown) => {
      throw refusal(`${path}/${name}`, error);
    });
    try {
      await giveToOwner(file);
      await file.writeFile(content);
      await file.sync();
    } finally {
      await file.close();
    }
  }

  return {
    path,
    owner,
    async append(name, text) {
      const existing = await open(at(name), O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw refusal(`${path}/${name}`, error);
      });
      if (existing === undefined) {
        await createExclusive(name, text);
        return;
      }
      try {
        await checkExisting(name, existing);
        await existing.writeFile(text);
        await existing.sync();
      } finally {
        await existing.close();
      }
    },
    async replace(name, content) {
      await unlink(at(name)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw refusal(`${path}/${name}`, error);
      });
      await createExclusive(name, content);
    },
    async remove(name) {
      await unlink(at(name)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw refusal(`${path}/${name}`, error);
      });
    },
    create: createExclusive,
    close: () => handle.close(),
  };
}

/** Scoped helper: the directory descriptor is closed whatever `use` does. */
export async function usingDataDirectory<T>(path: string, use: (directory: DataDirectory) => Promise<T>): Promise<T> {
  const directory = await openDataDirectory(path);
  try {
    return await use(directory);
  } finally {
    await directory.close();
  }
}

function isSymbolicLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

function refusal(path: string, error: unknown): Error {
  const code = (error as NodeJS.ErrnoException).code;
  // O_DIRECTORY | O_NOFOLLOW on a link to a directory fails with ENOTDIR, not ELOOP.
  const isLink = code === 'ELOOP' || (code === 'ENOTDIR' && isSymbolicLink(path));
  if (code === 'ENOTDIR' && !isLink)
    return new PmsError('PMS_ERR_INTEGRITY', `${path} is not a directory: refusing to write into it`, { cause: error });
  if (isLink)
    return new PmsError('PMS_ERR_INTEGRITY', `${path} is a symbolic link: refusing to follow it (nothing is written through a link)`, {
      cause: error,
    });
  if (code === 'ENXIO' || code === 'EISDIR' || code === 'EPERM')
    return new PmsError('PMS_ERR_INTEGRITY', `${path} is not a regular file: refusing to write to it`, { cause: error });
  if (code === 'EEXIST') return new PmsError('PMS_ERR_INTEGRITY', `${path} already exists: refusing to overwrite it`, { cause: error });
  return error instanceof Error ? error : new Error(String(error));
}
