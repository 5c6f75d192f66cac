import type { BigIntStats } from 'node:fs';
import { mkdir, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/**
 * Local notes that a .ready file was already archived ahead of PostgreSQL asking for it (WAL-G's
 * walg_archive_status). They make PostgreSQL's later `wal-push` call for that file cheap: no
 * configuration, keys or storage client is loaded, only this module and one stat(2).
 *
 * A note names the file as it was read for archiving (device, inode, size, mtime and ctime in
 * nanoseconds, unchanged from before to after the read) and is written only after the object was
 * durably stored. Any write, truncate or replacement of the file since moves ctime or the inode,
 * so a note never vouches for content it did not archive; the sha256 is kept for people reading it.
 *
 * They live in pg_wal/pms_backup_status/: pg_basebackup never copies pg_wal's contents, so a
 * restored cluster cannot inherit them. A note is believed only while the same postmaster is
 * running (pid and start time from postmaster.pid): a restart may bring a different
 * BACKUP_REPOSITORY, and then every file is checked against the repository again.
 * This module imports nothing heavy on purpose; keep it that way.
 */
export const MARKER_DIR = 'pms_backup_status';

export interface FileIdentity {
  readonly dev: string;
  readonly ino: string;
  readonly size: string;
  readonly mtimeNs: string;
  readonly ctimeNs: string;
}

interface Marker {
  readonly v: 2;
  readonly sha256: string;
  readonly file: FileIdentity;
  readonly postmaster: string;
}

export function fileIdentity(stats: BigIntStats): FileIdentity {
  return {
    dev: String(stats.dev),
    ino: String(stats.ino),
    size: String(stats.size),
    mtimeNs: String(stats.mtimeNs),
    ctimeNs: String(stats.ctimeNs),
  };
}

export function sameFile(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

function walDirOf(walPath: string): string {
  return dirname(resolve(walPath));
}

export function markerPathOf(walPath: string): string {
  return join(walDirOf(walPath), MARKER_DIR, basename(walPath));
}

/** `<pid>@<start time>` of the postmaster whose data directory holds `walDir`, if one runs. */
export async function postmasterOf(walDir: string): Promise<string | undefined> {
  try {
    const lines = (await readFile(join(dirname(resolve(walDir)), 'postmaster.pid'), 'utf8')).split('\n');
    return lines[0] && lines[2] ? `${lines[0].trim()}@${lines[2].trim()}` : undefined;
  } catch {
    return undefined;
  }
}

/**
 * True when `walPath` was archived ahead by this postmaster and is still exactly the file that
 * was archived. The note is consumed: PostgreSQL marks the file .done after we exit 0 and never
 * asks again.
 */
export async function consumePushMarker(walPath: string): Promise<boolean> {
  const valid = await hasValidMarker(walPath);
  if (valid !== undefined) await unlink(markerPathOf(walPath)).catch(() => undefined);
  return valid === true;
}

/** true: a note vouches for the file; false: a note exists but does not; undefined: no note. */
export async function hasValidMarker(walPath: string): Promise<boolean | undefined> {
  let marker: Partial<Marker>;
  try {
    marker = JSON.parse(await readFile(markerPathOf(walPath), 'utf8')) as Partial<Marker>;
  } catch {
    return undefined;
  }
  const instance = await postmasterOf(walDirOf(walPath));
  if (marker.v !== 2 || instance === undefined || marker.postmaster !== instance || marker.file === undefined) return false;
  const now = await stat(walPath, { bigint: true }).then(fileIdentity, () => undefined);
  return now !== undefined && sameFile(now, marker.file);
}

/**
 * Records that `walPath`, read as `file` with content `sha256`, is durably archived. Call it
 * only after the store confirmed the object. Returns false when no server runs (nothing will
 * ask again, so there is nothing to note).
 */
export async function writePushMarker(walPath: string, sha256: string, file: FileIdentity): Promise<boolean> {
  const instance = await postmasterOf(walDirOf(walPath));
  if (instance === undefined) return false;
  const dir = join(walDirOf(walPath), MARKER_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const marker: Marker = { v: 2, sha256, file, postmaster: instance };
  const temp = join(dir, `.tmp-${process.pid}-${basename(walPath)}`);
  await writeFile(temp, JSON.stringify(marker), { mode: 0o600 });
  await rename(temp, join(dir, basename(walPath)));
  return true;
}

/** Drops notes whose WAL file is gone (archived and recycled) or that a dead writer left. */
export async function removeStaleMarkers(walDir: string, isWalName: (name: string) => boolean): Promise<void> {
  const dir = join(walDir, MARKER_DIR);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const stale =
      (name.startsWith('.tmp-') && !name.startsWith(`.tmp-${process.pid}-`)) ||
      (isWalName(name) &&
        (await stat(join(walDir, name)).then(
          () => false,
          () => true,
        )));
    if (stale) await unlink(join(dir, name)).catch(() => undefined);
  }
}
