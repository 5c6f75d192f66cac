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
 * The shell checks exactly what consumePushMarker checks, because a note's name is its whole
 * proof (push-marker.ts): this postmaster (pid and start time), and the file's device, inode,
 * size, mtime and ctime as `stat -L` sees them now. A regular file of that name only (never a
 * link); anything else, a missing postmaster.pid or a failing stat goes to Node, which decides
 * as before. PostgreSQL runs the command in the data directory with %p = pg_wal/%f, and expands
 * %% to %, which `stat`'s format needs.
 *
 * `walPush` is the command that archives one file, e.g. `pms-backup wal-push`; it must be safe to
 * paste into sh (callers quote paths).
 */
export function shellFirstArchiveCommand(walPush: string): string {
  const marker = `pg_wal/${MARKER_DIR}/%f@$pm_pid-$pm_start-$(stat -L -c %%d-%%i-%%s-%%.9Y-%%.9Z %p 2>/dev/null)`;
  return [
    `{ read -r pm_pid; read -r pm_dir; read -r pm_start; } < postmaster.pid 2>/dev/null`,
    `m="${marker}"`,
    `[ -f "$m" ]`,
    `[ ! -L "$m" ]`,
    `rm -f "$m"`,
    `exit 0; exec ${walPush} %p`,
  ].join(' && ');
}
