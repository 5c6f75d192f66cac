import { lstat, mkdir, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { type FileIdentity, fileIdentity, identityToken, postmasterOfDataDir } from '../../wal/file-identity.js';

/**
 * Local notes that a .ready file was already archived ahead of PostgreSQL asking for it (WAL-G's
 * walg_archive_status). They make PostgreSQL's later `wal-push` call for that file cheap: no
 * configuration, keys or storage client is loaded, only this module and one stat(2) — or no Node
 * at all, when archive_command is the shell-first form (archive-command.ts).
 *
 * A note's *name* says what it vouches for: `<WAL file>@<postmaster pid>-<postmaster start>-<dev>-
 * <inode>-<size>-<mtime>-<ctime>` (times as seconds.nanoseconds), the file as it was read for
 * archiving, unchanged from before to after the read, and the server then running. It is written
 * only after the object was durably stored. Any write, truncate or replacement of the file since
 * moves ctime or the inode, so a note never vouches for content it did not archive; a restart of
 * the server (which may bring a different BACKUP_REPOSITORY) changes the postmaster part, and then
 * every file is checked against the repository again. Because the whole proof is the name, a
 * shell can check it with `read` (postmaster.pid) and `stat -L -c`, in the same format as
 * identityToken below; the content (the sha256) is for people reading it.
 *
 * They live in pg_wal/pms_backup_status/: pg_basebackup never copies pg_wal's contents, so a
 * restored cluster cannot inherit them. This module imports nothing heavy on purpose; keep it
 * that way.
 */
export const MARKER_DIR = 'pms_backup_status';

export { type FileIdentity, fileIdentity, identityToken, sameFile } from '../../wal/file-identity.js';

/**
 * While the background pusher is archiving a file, `pms_backup_status/.pms-push-<file>` exists,
 * and `pms_backup_status/pusher.pid` names the live pusher and the server run it serves.
 * archive_command's shell waits while both hold, instead of starting Node only to wait on the
 * pusher for the same file (archive-command.ts). They are hints for when to look again, never
 * proof: only a note vouches.
 */
export const IN_FLIGHT_PREFIX = '.pms-push-';
export const PUSHER_PID_FILE = 'pusher.pid';

function walDirOf(walPath: string): string {
  return dirname(resolve(walPath));
}

/** The note's file name for `walName` read as `file` while `postmaster` (`<pid>-<start>`) ran. */
export function markerNameOf(walName: string, postmaster: string, file: FileIdentity): string {
  return `${walName}@${postmaster}-${identityToken(file)}`;
}

/** `<pid>-<start time>` of the postmaster whose data directory holds `walDir`, if one runs. */
export function postmasterOf(walDir: string): Promise<string | undefined> {
  return postmasterOfDataDir(dirname(resolve(walDir)));
}

/** The path of the note that would vouch for `walPath` as it is now, if a server runs and the file exists. */
async function currentMarkerPath(walPath: string): Promise<string | undefined> {
  const instance = await postmasterOf(walDirOf(walPath));
  if (instance === undefined) return undefined;
  const now = await stat(walPath, { bigint: true }).then(fileIdentity, () => undefined);
  return now === undefined ? undefined : join(walDirOf(walPath), MARKER_DIR, markerNameOf(basename(walPath), instance, now));
}

/**
 * True when `walPath` was archived ahead by this postmaster and is still exactly the file that
 * was archived. The note is consumed: PostgreSQL marks the file .done after we exit 0 and never
 * asks again.
 */
export async function consumePushMarker(walPath: string): Promise<boolean> {
  const path = await currentMarkerPath(walPath);
  if (path === undefined || !(await isPlainFile(path))) return false;
  await unlink(path).catch(() => undefined);
  return true;
}

/** True when a note vouches for the file as it is now. */
export async function hasValidMarker(walPath: string): Promise<boolean> {
  const path = await currentMarkerPath(walPath);
  return path !== undefined && (await isPlainFile(path));
}

/**
 * A note is a non-empty regular file of this user's, exactly what the shell's `[ -f ] && [ ! -L ]
 * && [ -s ] && [ -O ]` accepts: never a link, a directory, an empty file a stray `touch` made, or
 * a file another user planted (archive-command.ts).
 */
async function isPlainFile(path: string): Promise<boolean> {
  return lstat(path).then(
    (s) => s.isFile() && s.size > 0 && (process.geteuid === undefined || s.uid === process.geteuid()),
    () => false,
  );
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
  const temp = join(dir, `.tmp-${process.pid}-${basename(walPath)}`);
  await writeFile(temp, JSON.stringify({ v: 3, sha256 }), { mode: 0o600 });
  await rename(temp, join(dir, markerNameOf(basename(walPath), instance, file)));
  return true;
}

/** Marks `walName` as held by this pusher (see IN_FLIGHT_PREFIX). */
export async function noteInFlight(walDir: string, walName: string): Promise<void> {
  const dir = join(walDir, MARKER_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, `${IN_FLIGHT_PREFIX}${walName}`), '', { mode: 0o600 });
}

/** Ends the hold of `walName`: after its note was written, so a shell that sees this gone finds the note. */
export async function clearInFlight(walDir: string, walName: string): Promise<void> {
  await unlink(join(walDir, MARKER_DIR, `${IN_FLIGHT_PREFIX}${walName}`)).catch(() => undefined);
}

/**
 * Names this process as the pusher of `walDir` for the server run `postmaster` (`<pid>-<start>`,
 * postmasterOf): `<pid> <postmaster>`. It holds the pusher's address (the lock). The shell waits
 * only for a pusher of the server that runs it, so a file left by a killed pusher whose pid was
 * reused (a restarted container) is not believed. Drops a dead pusher's holds. Written whole by
 * rename: the shell reads it with `read`.
 */
export async function claimPusherPid(walDir: string, postmaster: string): Promise<void> {
  const dir = join(walDir, MARKER_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const name of await readdir(dir)) {
    if (name.startsWith(IN_FLIGHT_PREFIX)) await unlink(join(dir, name)).catch(() => undefined);
  }
  const temp = join(dir, `.tmp-${process.pid}-${PUSHER_PID_FILE}`);
  await writeFile(temp, `${process.pid} ${postmaster}\n`, { mode: 0o600 });
  await rename(temp, join(dir, PUSHER_PID_FILE));
}

/** Removes pusher.pid if it still names this process (a successor may have written its own). */
export async function releasePusherPid(walDir: string): Promise<void> {
  const path = join(walDir, MARKER_DIR, PUSHER_PID_FILE);
  const named = await readFile(path, 'utf8').then(
    (text) => text.trim().split(' ')[0],
    () => undefined,
  );
  if (named === String(process.pid)) await unlink(path).catch(() => undefined);
}

/**
 * Drops notes that can no longer vouch for anything: their WAL file is gone (archived and
 * recycled) or changed, the server that wrote them stopped, the shell used them (emptied), a dead
 * writer left a temporary file, or an older version wrote them (named by the WAL file alone).
 */
export async function removeStaleMarkers(walDir: string, isWalName: (name: string) => boolean): Promise<void> {
  const dir = join(walDir, MARKER_DIR);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  const instance = await postmasterOf(walDir);
  for (const name of names) {
    const at = name.indexOf('@');
    const walName = at < 0 ? name : name.slice(0, at);
    let stale: boolean;
    // Another writer's temporary note only once it is old: a wal-push beside the pusher may be about to rename it.
    if (name.startsWith('.tmp-'))
      stale =
        !name.startsWith(`.tmp-${process.pid}-`) &&
        (await stat(join(dir, name)).then(
          (s) => Date.now() - s.mtimeMs > 60_000,
          () => false,
        ));
    else if (!isWalName(walName)) stale = false;
    else if (at < 0 || instance === undefined) stale = true;
    else {
      const now = await stat(join(walDir, walName), { bigint: true }).then(fileIdentity, () => undefined);
      stale =
        now === undefined ||
        name !== markerNameOf(walName, instance, now) ||
        (await lstat(join(dir, name)).then(
          (s) => s.size === 0,
          () => false,
        ));
    }
    if (stale) await unlink(join(dir, name)).catch(() => undefined);
  }
}
