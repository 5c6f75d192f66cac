import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PmsError } from '../../../errors/catalogue.js';

export interface ExtractedSummary {
  readonly files: number;
  readonly directories: number;
}

/**
 * Checks what tar left in a data directory before anyone (root, in restore --pitr) writes there
 * or starts a server on it: only directories and regular files with a single link, all owned
 * by the user who extracted them. Nothing is followed.
 *
 * PostgreSQL's BASE_BACKUP never produces anything else here: it writes pg_wal as a directory
 * even when pg_wal is a symbolic link on the server, it skips sockets, FIFOs and devices, and
 * its only links are the pg_tblspc/<oid> entries of tablespaces, which base-backup refuses.
 * So a symbolic link, a hard link or a special file was put there by whoever crafted the tar,
 * typically to make a later write follow it (postgresql.auto.conf -> a file of root's).
 */
export async function inspectExtracted(dataDir: string, backupId: string): Promise<ExtractedSummary> {
  const top = await lstat(dataDir);
  let files = 0;
  let directories = 0;
  const walk = async (relative: string): Promise<void> => {
    for (const name of await readdir(join(dataDir, relative))) {
      const path = relative ? `${relative}/${name}` : name;
      const full = join(dataDir, path);
      const info = await lstat(full);
      if (info.isDirectory()) {
        directories += 1;
        if (info.uid !== top.uid) throw refuse(backupId, path, `belongs to uid ${info.uid}, not to the extracting user (uid ${top.uid})`);
        await walk(path);
      } else if (info.isFile()) {
        files += 1;
        if (info.nlink !== 1) throw refuse(backupId, path, `is a hard link (${info.nlink} names for one file)`);
        if (info.uid !== top.uid) throw refuse(backupId, path, `belongs to uid ${info.uid}, not to the extracting user (uid ${top.uid})`);
      } else if (info.isSymbolicLink()) {
        const target = await readlink(full).catch(() => '?');
        const why = path.startsWith('pg_tblspc/') ? ' (a tablespace: base-backup refuses clusters with tablespaces)' : '';
        throw refuse(backupId, path, `is a symbolic link to ${JSON.stringify(target)}${why}`);
      } else {
        const kind = info.isFIFO() ? 'a FIFO' : info.isSocket() ? 'a socket' : 'a device file';
        throw refuse(backupId, path, `is ${kind}`);
      }
    }
  };
  await walk('');
  return { files, directories };
}

function refuse(backupId: string, path: string, what: string): PmsError {
  return new PmsError(
    'PMS_ERR_INTEGRITY',
    `base backup ${backupId} holds ${path}, which ${what}: a base backup holds only directories and regular files, so this one was not made by PostgreSQL; refusing it (nothing was written through it)`,
    { details: { entry: path } },
  );
}
