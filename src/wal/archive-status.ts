import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PmsError } from '../errors/catalogue.js';
import { parseWalFileName } from './wal-file-name.js';

/**
 * PostgreSQL's archive_status directory: `<name>.ready` for each WAL file waiting for
 * archive_command, renamed to `.done` once it exited 0. Read-only here: only PostgreSQL changes it,
 * so nothing we do can lose a file it still has to archive.
 */

/** .ready files in PostgreSQL's own order: timeline history first, then oldest first. */
export async function readyFiles(walDir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(join(walDir, 'archive_status'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new PmsError('PMS_ERR_INTERNAL', `cannot list ${join(walDir, 'archive_status')}: ${(error as Error).message}`, { cause: error });
  }
  const names = entries
    .filter((e) => e.endsWith('.ready'))
    .map((e) => basename(e, '.ready'))
    .filter((n) => parseWalFileName(n) !== undefined);
  const rank = (name: string): number => (name.endsWith('.history') ? 0 : 1);
  return names.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

export interface ArchiveBacklog {
  /** WAL files PostgreSQL has finished and not yet seen archived. */
  readonly readyFiles: number;
  /** How long the oldest of them has waited (since its .ready file appeared), 0 with none. */
  readonly oldestReadySeconds: number;
}

/** The archiving backlog as the server sees it, for the archive-backlog metric and alert. */
export async function archiveBacklog(walDir: string, now = new Date()): Promise<ArchiveBacklog> {
  const names = await readyFiles(walDir);
  let oldest = now.getTime();
  for (const name of names) {
    const since = await stat(join(walDir, 'archive_status', `${name}.ready`)).then(
      (s) => s.mtimeMs,
      () => undefined, // archived meanwhile
    );
    if (since !== undefined) oldest = Math.min(oldest, since);
  }
  return { readyFiles: names.length, oldestReadySeconds: Math.max(0, (now.getTime() - oldest) / 1000) };
}
