import {
  closeSync,
  existsSync,
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
import { fileIdentity, identityToken, postmasterOfDataDirSync } from '../../../wal/file-identity.js';
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
 *   pg_wal/.pms-prefetch/<sysid>[-unsigned]/<name> a verified segment not (yet) published
 *   pg_wal/.pms-prefetch/<sysid>[-unsigned]/<name>@<postmaster>-<identity>  the note of a segment
 *                                                  published as pg_wal/<name> (publishSegment)
 *   pg_wal/.pms-prefetch/<sysid>[-unsigned]/wanted the last segment PostgreSQL asked wal-fetch for
 *   pg_wal/.pms-prefetch/<sysid>[-unsigned]/.pms-fetch-<rand>-<name>  a segment being fetched
 *   pg_wal/.pms-prefetch/<sysid>[-unsigned]/.pms-fetch-claim-<pid>-<name>  empty: the prefetcher
 *                                                  <pid> is fetching <name> (or starting to), until
 *                                                  it is published, spooled or given up
 * A file enters <sysid>/ only after every check wal-fetch makes (fetchWalFile writes a temporary
 * file, fsyncs it and renames it), so an entry is a verified segment of that system, of the
 * timeline its name says. WAL accepted only because of --allow-unsigned lives apart ("-unsigned")
 * and is never served to a wal-fetch without that flag.
 *
 * Published in place: the prefetcher then renames the verified segment to pg_wal/<name>, where
 * PostgreSQL reads a segment its restore_command did not deliver, and writes a note named by the
 * server run and the file's identity (wal/file-identity.ts). restore_command's shell checks the
 * note, marks it used (USED_NOTE) and answers 1, and PostgreSQL reads the file where it is: no
 * process beyond the shell and one stat, no rename and fsyncs of a restored file (docs/pitr.md,
 * "Segments published in place"). A note vouches only for that file as it was published and only
 * while that postmaster runs; the prefetcher keeps only the newest used one.
 */
export const SPOOL_ROOT = join('pg_wal', '.pms-prefetch');
export const LOCK_FILE = 'prefetcher.lock';
export const LOG_FILE = 'prefetcher.log';
const WANTED_FILE = 'wanted';
const TEMP_PREFIX = '.pms-fetch-';
/**
 * What a note holds once recovery used it (restore_command's shell writes it with `echo`, a
 * builtin). Still non-empty, so the shell answers for the same unchanged file again: PostgreSQL
 * re-reads the last segment at the end of recovery. An empty file vouches for nothing.
 */
export const USED_NOTE = 'used\n';

/** Whether a note of this size was used by recovery (empty: by a version before USED_NOTE, or planted). */
export function isUsedNoteSize(size: number): boolean {
  return size === 0 || size === Buffer.byteLength(USED_NOTE);
}
const CLAIM_PREFIX = `${TEMP_PREFIX}claim-`;

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

/** `<name>@<postmaster>-<identity>`: the note's file name, in the format the shell builds it (restore_command). */
export function publishedNoteName(name: string, postmaster: string, file: ReturnType<typeof fileIdentity>): string {
  return `${name}@${postmaster}-${identityToken(file)}`;
}

/** A note's parts: the segment it is for, or undefined for any other entry. */
export function parseNoteName(entry: string): { readonly name: string; readonly postmaster: string } | undefined {
  const at = entry.indexOf('@');
  if (at < 0 || !isSpoolable(entry.slice(0, at))) return undefined;
  const parts = entry.slice(at + 1).split('-');
  // <pid>-<start>-<dev>-<ino>-<size>-<mtime>-<ctime>: the first two are the server run.
  return parts.length >= 7 ? { name: entry.slice(0, at), postmaster: `${parts[0]}-${parts[1]}` } : undefined;
}

/**
 * Publishes the verified segment `<directory>/<name>` as pg_wal/<name> and writes its note; marks
 * it .done in archive_status as PostgreSQL marks a file restored from the archive, so a promoted
 * server never archives it again. Returns the note's entry name, or undefined (the segment stays
 * in the spool for wal-fetch's own fast path) when no server runs to bind the note to. The file's
 * content was fsynced before it entered the spool; the note is written last, so a note never
 * names a file that is not complete.
 */
export function publishSegment(dataDir: string, directory: string, name: string): string | undefined {
  const postmaster = postmasterOfDataDirSync(dataDir);
  if (postmaster === undefined || !isSpoolable(name)) return undefined;
  const target = join(dataDir, 'pg_wal', name);
  renameSync(join(directory, name), target);
  const file = fileIdentity(lstatSync(target, { bigint: true }));
  const status = join(dataDir, 'pg_wal', 'archive_status');
  if (existsSync(status)) writeFileSync(join(status, `${name}.done`), '', { mode: 0o600 });
  const note = publishedNoteName(name, postmaster, file);
  const temp = join(directory, `${TEMP_PREFIX}note-${process.pid}`);
  writeFileSync(temp, `${JSON.stringify({ v: 1, published: `pg_wal/${name}` })}\n`, { mode: 0o600 });
  renameSync(temp, join(directory, note));
  return note;
}

/**
 * wal-fetch's own answer for a published segment (the shell missed it, e.g. it was published a
 * moment after the shell looked): when this server run's note vouches for pg_wal/<name> as it is
 * now, the note is marked used and the file renamed onto `destination` (%p), as a spool hit.
 */
export function takePublished(dataDir: string, directory: string, name: string, destination: string, systemIdentifier: string): boolean {
  if (!isSpoolable(name)) return false;
  const postmaster = postmasterOfDataDirSync(dataDir);
  if (postmaster === undefined) return false;
  const path = join(dataDir, 'pg_wal', name);
  try {
    const stat = lstatSync(path, { bigint: true });
    if (!stat.isFile()) return false;
    const note = join(directory, publishedNoteName(name, postmaster, fileIdentity(stat)));
    const noteStat = lstatSync(note);
    if (!noteStat.isFile() || isUsedNoteSize(noteStat.size) || (process.geteuid !== undefined && noteStat.uid !== process.geteuid()))
      return false;
    if (!headerMatches(path, name, systemIdentifier)) return false;
    writeFileSync(note, USED_NOTE);
    renameSync(path, destination);
    return true;
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

/**
 * The prefetcher's claim on a segment it is fetching, from before the object is read until the
 * segment is published or spooled (or the fetch failed): restore_command's shell and wal-fetch's
 * fast path wait for a claimed segment while the claimant lives, instead of fetching it a second
 * time (docs/pitr.md, "A segment still in flight"). The temporary file of the fetch itself exists
 * only once decryption writes.
 */
export function claimFetch(directory: string, name: string): string {
  const path = join(directory, `${CLAIM_PREFIX}${process.pid}-${name}`);
  writeFileSync(path, '', { mode: 0o600 });
  return path;
}

/** Whether `entry` is a claim of the process `pid` (claims of others are a dead prefetcher's leftovers). */
export function isOwnClaim(entry: string, pid = process.pid): boolean {
  return entry.startsWith(`${CLAIM_PREFIX}${pid}-`);
}

/** Whether a fetch of `name` into the spool is under way (its temporary file or a claim exists). */
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
