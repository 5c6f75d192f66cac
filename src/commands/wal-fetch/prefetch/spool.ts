import {
  closeSync,
  lstatSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { parseSegmentHeader, LONG_HEADER_BYTES } from '../../../wal/wal-page-header.js';
import { parseWalFileName } from '../../../wal/wal-file-name.js';

/**
 * The prefetch spool: verified, decompressed segments waiting for PostgreSQL to ask for them.
 * This module is on wal-fetch's fast path (a spool hit), so it imports nothing but node:fs and
 * the WAL name/header parsers: no config, no keys, no storage, no OpenPGP.
 *
 * Layout, inside the data directory being recovered (under pg_wal/, whose contents BASE_BACKUP
 * and pg_basebackup never copy, and whose non-WAL names PostgreSQL ignores):
 *   pg_wal/.pms-prefetch/prefetcher.lock           pid of the one background prefetcher
 *   pg_wal/.pms-prefetch/prefetcher.log            its stderr
 *   pg_wal/.pms-prefetch/<sysid>[-unsigned]/<name> segments of that system, named with their timeline
 *   pg_wal/.pms-prefetch/<sysid>[-unsigned]/wanted the last segment PostgreSQL asked wal-fetch for
 *   pg_wal/.pms-prefetch/<sysid>[-unsigned]/.pms-fetch-<rand>-<name>  a segment being fetched
 * A file enters <sysid>/ only after every check wal-fetch makes (fetchWalFile writes a temporary
 * file, fsyncs it and renames it), so an entry is a verified segment of that system, of the
 * timeline its name says. WAL accepted only because of --allow-unsigned lives apart ("-unsigned")
 * and is never served to a wal-fetch without that flag.
 */
export const SPOOL_ROOT = join('pg_wal', '.pms-prefetch');
export const LOCK_FILE = 'prefetcher.lock';
export const LOG_FILE = 'prefetcher.log';
const WANTED_FILE = 'wanted';
const TEMP_PREFIX = '.pms-fetch-';

/**
 * Entries older than this are removed, not served: a spool left by a recovery that stopped long
 * ago may have been verified against signers that are no longer trusted.
 */
export const SPOOL_STALE_MS = 60 * 60 * 1000;

export function spoolRoot(dataDir: string): string {
  return join(dataDir, SPOOL_ROOT);
}

export function spoolDirectory(dataDir: string, systemIdentifier: string, allowUnsigned: boolean): string {
  if (!/^\d+$/.test(systemIdentifier)) throw new RangeError(`not a system identifier: ${systemIdentifier}`);
  return join(spoolRoot(dataDir), `${systemIdentifier}${allowUnsigned ? '-unsigned' : ''}`);
}

/** Only complete segments are ever spooled: history files, backup history and partials are always fetched fresh. */
export function isSpoolable(name: string): boolean {
  return parseWalFileName(name)?.kind === 'segment';
}

/**
 * A spool hit: moves the spooled segment onto `destination` (%p) by rename and returns true. An
 * entry that is not a regular file, is stale, or whose page header names another system is
 * removed and counts as a miss, so the caller fetches the segment from the repository.
 */
export function takeFromSpool(directory: string, name: string, destination: string, systemIdentifier: string, now = Date.now()): boolean {
  if (!isSpoolable(name)) return false;
  const path = join(directory, name);
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(path);
  } catch {
    return false;
  }
  if (!stat.isFile() || now - stat.mtimeMs > SPOOL_STALE_MS || !headerMatches(path, name, systemIdentifier)) {
    rmSync(path, { force: true, recursive: true });
    return false;
  }
  renameSync(path, destination);
  return true;
}

/** The long page header of the spooled file still names this system (a second look, after the fetch's own check). */
function headerMatches(path: string, name: string, systemIdentifier: string): boolean {
  try {
    const fd = openSync(path, 'r');
    try {
      const header = Buffer.alloc(LONG_HEADER_BYTES);
      const read = readSync(fd, header, 0, LONG_HEADER_BYTES, 0);
      return parseSegmentHeader(header.subarray(0, read), name).systemIdentifier === systemIdentifier;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** Tells the prefetcher where recovery is (it also sees spooled entries disappear). */
export function markWanted(directory: string, name: string): void {
  const temp = join(directory, `${TEMP_PREFIX}wanted-${process.pid}`);
  writeFileSync(temp, name, { mode: 0o600 });
  renameSync(temp, join(directory, WANTED_FILE));
}

export function readWanted(directory: string): string | undefined {
  try {
    const name = readFileSync(join(directory, WANTED_FILE), 'utf8').trim();
    return isSpoolable(name) ? name : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a fetch of `name` into the spool is under way (its temporary file exists). */
export function inFlight(directory: string, name: string): boolean {
  try {
    return readdirSync(directory).some((entry) => entry.startsWith(TEMP_PREFIX) && entry.endsWith(`-${name}`));
  } catch {
    return false;
  }
}

export function isTemporary(entry: string): boolean {
  return entry.startsWith(TEMP_PREFIX);
}

/** The pid in the lock file if that process is alive, else undefined. */
export function livePrefetcher(dataDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(join(spoolRoot(dataDir), LOCK_FILE), 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    // EPERM: alive, but another user's (not ours to count on, but not ours to replace either).
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

/**
 * Takes the prefetcher lock for this process: false if a live prefetcher holds it. A lock left
 * by a dead one is replaced. Created exclusively, so two starting at once cannot both win.
 */
export function takePrefetcherLock(dataDir: string): boolean {
  const path = join(spoolRoot(dataDir), LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeFileSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (livePrefetcher(dataDir) !== undefined) return false;
      try {
        unlinkSync(path);
      } catch {
        // Another starter removed it first; try again.
      }
    }
  }
  return false;
}

/** Gives the lock up if it is still ours. */
export function releasePrefetcherLock(dataDir: string): void {
  const path = join(spoolRoot(dataDir), LOCK_FILE);
  try {
    if (Number(readFileSync(path, 'utf8').trim()) === process.pid) unlinkSync(path);
  } catch {
    // Already gone (recovery ended and the spool was removed).
  }
}
