import { IN_FLIGHT_PREFIX, LINK_SUFFIX, MARKER_DIR, PUSHER_PID_FILE } from './push-marker.js';

/**
 * archive_command in its shell-first form: the shell answers a file the background pusher already
 * archived ahead, and starts Node (`exec <walPush> %p`) only when no note vouches for it.
 *
 * PostgreSQL 15's archiver runs archive_command for one file at a time and waits for it. Draining
 * a backlog, the pusher archives ahead 2 at a time, so nearly every call finds its note, or finds
 * the file held by the pusher and waits for it: in Node either costs a process start (~100 ms of
 * CPU on Node 24, docs/performance.md), taken from the same two cores the pusher compresses and
 * encrypts on. In the shell it is builtins only (`read`, `[`, `:`, `kill -0`), plus a `sleep`
 * per look while waiting: no `stat` process, no subshell (together ~5.5 ms a call here).
 *
 * The shell's proof (push-marker.ts): this postmaster (pid and start time from postmaster.pid, in
 * the note's name); `[ "$m.l" -ef "$p" ]`, %p is still the inode linked before it was read; and
 * `[ ! "$p" -nt "$m" ]`, it was not written since (the note carries the file's mtime, compared to
 * the nanosecond). The note must be a non-empty regular file of the server's user (never a link,
 * a directory, an empty file). Anything else, or a missing postmaster.pid, goes to Node, which
 * checks the file's whole identity (inode, size, mtime, ctime) against the note's content.
 * Whoever can write in pg_wal as the server's user can forge a note, as they could remove WAL
 * outright: the defence against lost WAL is monitor's continuity check of the repository
 * (wal-gaps), not the note. PostgreSQL runs the command in the data directory with %p = pg_wal/%f.
 *
 * `walPush` is the command that archives one file, e.g. `pms-backup wal-push`; it must be safe to
 * paste into sh (callers quote paths).
 */
export function shellFirstArchiveCommand(walPush: string): string {
  const vouched = [
    `{ read -r pm_pid; read -r pm_dir; read -r pm_start; } 2>/dev/null < postmaster.pid`,
    `m="$d/$f@$pm_pid-$pm_start"`,
    `[ "$m${LINK_SUFFIX}" -ef "$p" ]`,
    `[ ! "$p" -nt "$m" ]`,
    // A note is a non-empty regular file of the server's user (isPlainFile in push-marker.ts).
    `[ -f "$m" ]`,
    `[ ! -L "$m" ]`,
    `[ -s "$m" ]`,
    `[ -O "$m" ]`,
    // Emptied, it vouches no more (a builtin, where rm cost a process); the pusher sweeps it.
    `: > "$m"`,
    `exit 0`,
  ].join(' && ');
  // The live pusher of this server run is archiving %f: look again every WAIT_S instead of
  // starting Node to wait on the pusher for the same file. `read`, `[` and `kill -0` are
  // builtins: each look costs one `sleep`. The first look comes even before the hold exists:
  // the pusher and the archiver see a new .ready file at once.
  const alive = `{ read -r q r; } 2>/dev/null < $d/${PUSHER_PID_FILE} && [ "$r" = "$pm_pid-$pm_start" ] && kill -0 "$q" 2>/dev/null`;
  const wait = `w=0; while [ $w -lt ${WAIT_LOOKS} ] && ${alive}; do sleep ${WAIT_S}; w=$((w+1)); [ -f "$d/${IN_FLIGHT_PREFIX}$f" ] && continue; v; break; done`;
  // %f and %p once each: the command must fit PostgreSQL's buffer even with a long wal-push path.
  const command = `d=pg_wal/${MARKER_DIR} f=%f p=%p; v() { ${vouched}; }; v; ${wait}; exec ${walPush} "$p"`;
  if (expandedLength(command) > MAX_EXPANDED_COMMAND) {
    throw new RangeError(
      `archive_command would be ${expandedLength(command)} bytes once PostgreSQL expands it; PostgreSQL 15 cuts it at ${MAX_EXPANDED_COMMAND}: use a shorter path to wal-push`,
    );
  }
  return command;
}

/**
 * How long the shell waits for a file the pusher holds: every 50 ms (a segment takes the pusher
 * ~50-100 ms; each look is a `sleep` process), 200 looks (10-12 s with the processes' own time),
 * then Node asks the pusher and waits as before (a slow or failing store).
 */
const WAIT_S = '0.05';
const WAIT_LOOKS = 200;

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
