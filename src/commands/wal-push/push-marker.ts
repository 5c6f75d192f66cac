import { link, lstat, mkdir, readFile, readdir, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { type FileIdentity, fileIdentity, identityToken, postmasterOfDataDir } from '../../wal/file-identity.js';

/**
 * Local notes that a .ready file was already archived ahead of PostgreSQL asking for it (WAL-G's
 * walg_archive_status). They make PostgreSQL's later `wal-push` call for that file cheap: no
 * configuration, keys or storage client is loaded, only this module and two stat(2) calls — or
 * no Node at all, when archive_command is the shell-first form (archive-command.ts).
 *
 * A note is two entries in pg_wal/pms_backup_status/, both named `<WAL file>@<postmaster pid>-
 * <postmaster start>` (a restart of the server, which may bring a different BACKUP_REPOSITORY,
 * changes the name, and then every file is checked against the repository again):
 * - `<name>.l`, a hard link to the WAL file made *before* it is read (linkForProof): it pins the
 *   inode that was archived, so `[ "$m.l" -ef %p ]`, a shell builtin, proves %p was not replaced.
 * - `<name>`, written only after the object was durably stored: its content names the file's
 *   full identity as read (device, inode, size, mtime and ctime, identityToken) and its sha256,
 *   and its mtime is set to the file's mtime, so `[ ! %p -nt "$m" ]` (nanoseconds in dash and
 *   bash) proves the file was not written since. Node checks the full identity from the content.
 * Any write or truncate of the file moves its mtime; a replacement changes the inode. The shell's
 * proof is weaker than Node's only against a deliberate reset of the mtime (or the clock stepped
 * back past it), by someone who can write in pg_wal as the server's user and so can forge a note
 * or remove WAL anyway: the defence against lost WAL is monitor's continuity check of the
 * repository (wal-gaps), not the note. The link keeps a segment PostgreSQL removed on disk until
 * the next sweep (removeStaleMarkers, every 15 s in the pusher).
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

/** The note's file name for `walName` while `postmaster` (`<pid>-<start>`) runs; its link adds LINK_SUFFIX. */
export function markerNameOf(walName: string, postmaster: string): string {
  return `${walName}@${postmaster}`;
}

export const LINK_SUFFIX = '.l';

/** `<pid>-<start>` of the postmaster whose data directory holds `walDir`, if one runs. */
export function postmasterOf(walDir: string): Promise<string | undefined> {
  return postmasterOfDataDir(dirname(resolve(walDir)));
}

interface NoteBody {
  readonly v: 4;
  readonly sha256: string;
  /** identityToken of the file as it was read. */
  readonly file: string;
}

/** The note's path for `walPath` if a server runs, and the file's identity now, if it exists. */
async function currentNote(walPath: string): Promise<{ path: string; now: FileIdentity } | undefined> {
  const instance = await postmasterOf(walDirOf(walPath));
  if (instance === undefined) return undefined;
  const now = await stat(walPath, { bigint: true }).then(fileIdentity, () => undefined);
  if (now === undefined) return undefined;
  return { path: join(walDirOf(walPath), MARKER_DIR, markerNameOf(basename(walPath), instance)), now };
}

/** True when the note at `path` is a plain file whose content vouches for a file whose identity is `now`. */
async function vouches(path: string, now: FileIdentity): Promise<boolean> {
  if (!(await isPlainFile(path))) return false;
  const body = await readFile(path, 'utf8').then(
    (text) => JSON.parse(text) as Partial<NoteBody>,
    () => undefined,
  );
  return body?.v === 4 && body.file === identityToken(now);
}

/**
 * True when `walPath` was archived ahead by this postmaster and is still exactly the file that
 * was archived. The note is consumed: PostgreSQL marks the file .done after we exit 0 and never
 * asks again.
 */
export async function consumePushMarker(walPath: string): Promise<boolean> {
  const note = await currentNote(walPath);
  if (note === undefined || !(await vouches(note.path, note.now))) return false;
  await Promise.all([unlink(note.path), unlink(`${note.path}${LINK_SUFFIX}`)].map((p) => p.catch(() => undefined)));
  return true;
}

/** True when a note vouches for the file as it is now. */
export async function hasValidMarker(walPath: string): Promise<boolean> {
  const note = await currentNote(walPath);
  return note !== undefined && (await vouches(note.path, note.now));
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
 * Pins the inode of `walPath` for the shell's proof, before the file is read (the link moves
 * the file's ctime, which the identity read afterwards includes). Best effort: without the link
 * (a file system without hard links, a server not running) the shell finds no proof and
 * starts Node, which checks the note's content.
 */
export async function linkForProof(walPath: string): Promise<void> {
  const instance = await postmasterOf(walDirOf(walPath));
  if (instance === undefined) return;
  const dir = join(walDirOf(walPath), MARKER_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `${markerNameOf(basename(walPath), instance)}${LINK_SUFFIX}`);
  await unlink(path).catch(() => undefined);
  await link(walPath, path).catch(() => undefined);
}

/** Removes the link linkForProof made, after a failed push: no note will come for it. */
export async function dropProofLink(walPath: string): Promise<void> {
  const instance = await postmasterOf(walDirOf(walPath));
  if (instance === undefined) return;
  const name = `${markerNameOf(basename(walPath), instance)}${LINK_SUFFIX}`;
  await unlink(join(walDirOf(walPath), MARKER_DIR, name)).catch(() => undefined);
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
  const name = markerNameOf(basename(walPath), instance);
  // A link to another inode (the file was replaced between link and read) proves nothing.
  const linked = await stat(join(dir, `${name}${LINK_SUFFIX}`), { bigint: true }).then(fileIdentity, () => undefined);
  if (linked !== undefined && (linked.dev !== file.dev || linked.ino !== file.ino)) {
    await unlink(join(dir, `${name}${LINK_SUFFIX}`)).catch(() => undefined);
  }
  const temp = join(dir, `.tmp-${process.pid}-${basename(walPath)}`);
  const body: NoteBody = { v: 4, sha256, file: identityToken(file) };
  await writeFile(temp, JSON.stringify(body), { mode: 0o600 });
  await setMtimeAtLeast(temp, BigInt(file.mtimeNs));
  await rename(temp, join(dir, name));
  return true;
}

/**
 * Sets `path`'s mtime to `ns`, or the nearest time above it that utimes(2) can express through
 * Node's seconds as a double (~240 ns apart today): never below, or the shell's `-nt` would
 * call the file newer than its note. A file written after it was read gets the time of that
 * write, later than its last write before the read by far more than this. Where the file system
 * keeps coarser times, the note gets the epoch: the shell then always defers to Node.
 */
async function setMtimeAtLeast(path: string, ns: bigint): Promise<void> {
  let seconds = Number(ns) / 1e9;
  for (let attempt = 0; attempt < 4; attempt += 1) {
    await utimes(path, seconds, seconds);
    const set = (await stat(path, { bigint: true })).mtimeNs;
    if (set >= ns && set - ns < 1_000_000n) return;
    seconds += 1e-6;
  }
  await utimes(path, 0, 0);
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
 * Drops notes and links that can no longer vouch for anything: their WAL file is gone (archived
 * and recycled) or changed, the server that wrote them stopped, the shell used them (emptied), a
 * link has no note and no push holds it, a dead writer left a temporary file, or an older version
 * wrote them (named by the file's identity, or by the WAL file alone). `busy` names files a push
 * of this process is working on: their link is being made or read.
 */
export async function removeStaleMarkers(
  walDir: string,
  isWalName: (name: string) => boolean,
  busy: (walName: string) => boolean = () => false,
): Promise<void> {
  const dir = join(walDir, MARKER_DIR);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  const present = new Set(names);
  const instance = await postmasterOf(walDir);
  const isStale = async (name: string): Promise<boolean> => {
    // Another writer's temporary note only once it is old: a wal-push beside the pusher may be about to rename it.
    if (name.startsWith('.tmp-'))
      return (
        !name.startsWith(`.tmp-${process.pid}-`) &&
        (await stat(join(dir, name)).then(
          (s) => Date.now() - s.mtimeMs > 60_000,
          () => false,
        ))
      );
    const at = name.indexOf('@');
    const walName = at < 0 ? name : name.slice(0, at);
    if (!isWalName(walName)) return false;
    if (at < 0 || instance === undefined) return true;
    const isLink = name.endsWith(LINK_SUFFIX);
    const noteName = isLink ? name.slice(0, -LINK_SUFFIX.length) : name;
    if (noteName !== markerNameOf(walName, instance)) return true;
    if (busy(walName)) return false;
    const now = await stat(join(walDir, walName), { bigint: true }).then(fileIdentity, () => undefined);
    if (now === undefined) return true;
    if (isLink) {
      if (!present.has(noteName) && !present.has(`${IN_FLIGHT_PREFIX}${walName}`)) return true;
      const linked = await lstat(join(dir, name), { bigint: true }).then(fileIdentity, () => undefined);
      return linked === undefined || linked.dev !== now.dev || linked.ino !== now.ino || !(await vouchesOrPending(noteName));
    }
    return !(await vouches(join(dir, name), now));
  };
  const vouchesOrPending = async (noteName: string): Promise<boolean> => {
    if (!present.has(noteName)) return true;
    const walName = noteName.slice(0, noteName.indexOf('@'));
    const now = await stat(join(walDir, walName), { bigint: true }).then(fileIdentity, () => undefined);
    return now !== undefined && (await vouches(join(dir, noteName), now));
  };
  for (const name of names) {
    if (await isStale(name)) await unlink(join(dir, name)).catch(() => undefined);
  }
}
