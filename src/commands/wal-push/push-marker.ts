import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/**
 * Local notes that a .ready file was already archived ahead of PostgreSQL asking for it (WAL-G's
 * walg_archive_status). They make PostgreSQL's later `wal-push` call for that file cheap: no
 * configuration, keys or storage client is loaded, only this module and a sha256 of the file.
 *
 * They live in pg_wal/pms_backup_status/: pg_basebackup never copies pg_wal's contents, so a
 * restored cluster cannot inherit them. A note is believed only while the same postmaster is
 * running (pid and start time from postmaster.pid): a restart may bring a different
 * BACKUP_REPOSITORY, and then every file is checked against the repository again.
 * This module imports nothing heavy on purpose; keep it that way.
 */
export const MARKER_DIR = 'pms_backup_status';

interface Marker {
  readonly v: 1;
  readonly sha256: string;
  readonly postmaster: string;
}

function walDirOf(walPath: string): string {
  return dirname(resolve(walPath));
}

async function postmasterInstance(walPath: string): Promise<string | undefined> {
  try {
    const lines = (await readFile(join(dirname(walDirOf(walPath)), 'postmaster.pid'), 'utf8')).split('\n');
    return lines[0] && lines[2] ? `${lines[0].trim()}@${lines[2].trim()}` : undefined;
  } catch {
    return undefined;
  }
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * True when `walPath` was archived ahead by this postmaster with exactly this content. The
 * note is consumed: PostgreSQL marks the file .done after we exit 0 and never asks again.
 */
export async function consumePushMarker(walPath: string): Promise<boolean> {
  const markerPath = join(walDirOf(walPath), MARKER_DIR, basename(walPath));
  let marker: Partial<Marker>;
  try {
    marker = JSON.parse(await readFile(markerPath, 'utf8')) as Partial<Marker>;
  } catch {
    return false;
  }
  const instance = await postmasterInstance(walPath);
  const valid =
    marker.v === 1 &&
    instance !== undefined &&
    marker.postmaster === instance &&
    marker.sha256 === (await sha256Of(walPath).catch(() => undefined));
  await unlink(markerPath).catch(() => undefined);
  return valid;
}

/** Records that `walPath` with content `sha256` is durably archived. */
export async function writePushMarker(walPath: string, sha256: string): Promise<void> {
  const instance = await postmasterInstance(walPath);
  if (instance === undefined) return; // not run by a server: nothing will ask again
  const dir = join(walDirOf(walPath), MARKER_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const marker: Marker = { v: 1, sha256, postmaster: instance };
  const temp = join(dir, `.tmp-${process.pid}-${basename(walPath)}`);
  await writeFile(temp, JSON.stringify(marker), { mode: 0o600 });
  await rename(temp, join(dir, basename(walPath)));
}

/** Drops notes whose WAL file is gone (archived and recycled) or that a dead writer left. */
export async function removeStaleMarkers(walDir: string): Promise<void> {
  const dir = join(walDir, MARKER_DIR);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const stale =
      name.startsWith('.tmp-') ||
      (await stat(join(walDir, name)).then(
        () => false,
        () => true,
      ));
    if (stale) await unlink(join(dir, name)).catch(() => undefined);
  }
}
