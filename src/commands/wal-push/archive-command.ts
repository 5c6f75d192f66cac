import { MARKER_DIR } from './push-marker.js';

/**
 * archive_command in its shell-first form: the shell answers a file the background pusher already
 * archived ahead, and starts Node (`exec <walPush> %p`) only when no note vouches for it.
 *
 * PostgreSQL 15's archiver runs archive_command for one file at a time and waits for it. Draining
 * a backlog, the pusher archives ahead 2 at a time, so nearly every call finds its note: in Node
 * that answer costs a process start (40 ms on Node 24, ~70 ms on Node 20, docs/performance.md),
 * taken from the same two cores the pusher compresses and encrypts on; in the shell it is `read`
 * (a builtin) of postmaster.pid, one `stat` and one `rm`.
 *
 * The shell checks exactly what consumePushMarker checks, because a note's name is its proof
 * (push-marker.ts): this postmaster (pid and start time), and the file's device, inode, size,
 * mtime and ctime as `stat -L` sees them now. Only a non-empty regular file of the server's user
 * under that name (never a link, a directory, an empty file); anything else, a missing
 * postmaster.pid or a failing stat goes to Node, which decides as before. Whoever can write in
 * pg_wal as the server's user can forge a note, as they could remove WAL outright: the defence
 * against lost WAL is monitor's continuity check of the repository (wal-gaps), not the note. PostgreSQL runs the command in the data directory with %p = pg_wal/%f, and expands
 * %% to %, which `stat`'s format needs.
 *
 * `walPush` is the command that archives one file, e.g. `pms-backup wal-push`; it must be safe to
 * paste into sh (callers quote paths).
 */
export function shellFirstArchiveCommand(walPush: string): string {
  const marker = `pg_wal/${MARKER_DIR}/%f@$pm_pid-$pm_start-$(stat -L -c %%d-%%i-%%s-%%.9Y-%%.9Z %p 2>/dev/null)`;
  const command = [
    `{ read -r pm_pid; read -r pm_dir; read -r pm_start; } 2>/dev/null < postmaster.pid`,
    `m="${marker}"`,
    // A note is a non-empty regular file of the server's user (isPlainFile in push-marker.ts).
    `[ -f "$m" ]`,
    `[ ! -L "$m" ]`,
    `[ -s "$m" ]`,
    `[ -O "$m" ]`,
    `rm -f "$m"`,
    `exit 0; exec ${walPush} %p`,
  ].join(' && ');
  if (expandedLength(command) > MAX_EXPANDED_COMMAND) {
    throw new RangeError(
      `archive_command would be ${expandedLength(command)} bytes once PostgreSQL expands it; PostgreSQL 15 cuts it at ${MAX_EXPANDED_COMMAND}: use a shorter path to wal-push`,
    );
  }
  return command;
}

/**
 * PostgreSQL 15 builds the command in a MAXPGPATH buffer and silently cuts it there (1023 bytes
 * and the terminator): a cut command would fail, never archive, and stall the archive.
 */
const MAX_EXPANDED_COMMAND = 1023;
/** The longest %f PostgreSQL passes (a backup history file: 24 + 1 + 8 + 7), and %p = pg_wal/%f. */
const LONGEST_NAME = '000000010000000000000001.00000028.backup'.length;

function expandedLength(command: string): number {
  return command
    .replace(/%p/g, `pg_wal/${'x'.repeat(LONGEST_NAME)}`)
    .replace(/%f/g, 'x'.repeat(LONGEST_NAME))
    .replace(/%%/g, '%').length;
}
