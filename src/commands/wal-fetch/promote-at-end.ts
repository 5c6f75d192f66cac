import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PmsError } from '../../errors/catalogue.js';
import { SPOOL_ROOT } from './prefetch/spool.js';

/**
 * Promotion at the end of the archive (restore --pitr --target-time latest, docs/pitr.md).
 *
 * Archive recovery (recovery.signal) ends with a checkpoint PostgreSQL waits for before it takes
 * connections: every page replayed is written and fsynced first, 1-2 s after 150 segments on this
 * machine. A standby that is promoted instead writes an end-of-recovery record, opens at once and
 * checkpoints in the background. So restore --pitr prepares a standby (standby.signal, no
 * primary_conninfo), and wal-fetch, asked for a segment the archive does not hold, does what
 * `pg_ctl promote` does: creates the `promote` file and signals the postmaster. PostgreSQL looks
 * for it only after the archive and pg_wal both failed to give the segment, so promotion happens
 * exactly where archive recovery would have ended. A request made early (the first segment of a
 * new timeline not archived yet, the old timeline's copy then read) waits harmlessly for that
 * point. A server that does not promote must not wait as a standby forever: after
 * PROMOTION_CALLS calls for the same absent segment with the request standing, wal-fetch fails,
 * which stops recovery with the reason in the server log.
 */

export const PROMOTION_CALLS = 3;

/** pg_wal/.pms-prefetch/promotion: "<segment> <calls>", removed with the spool by recovery_end_command. */
const REQUESTS_FILE = 'promotion';

export type PromotionRequest =
  /** Archive recovery: it ends by itself, nothing to ask. */
  { readonly outcome: 'not-a-standby' } | { readonly outcome: 'requested'; readonly postmaster: number; readonly calls: number };

export function requestPromotion(dataDir: string, segment: string, ancestors: readonly number[] = processAncestors()): PromotionRequest {
  if (!existsSync(join(dataDir, 'standby.signal'))) return { outcome: 'not-a-standby' };
  const postmaster = postmasterPid(dataDir);
  // The promote file and the signal are for the server whose restore_command this is; a copied
  // or stale postmaster.pid must not make us signal some other process.
  if (!ancestors.includes(postmaster)) {
    throw new PmsError(
      'PMS_ERR_PROMOTION',
      `postmaster.pid in ${dataDir} names pid ${postmaster}, which is not the server running this restore_command (ancestors ${ancestors.join(', ') || 'unknown'}): not promoting`,
    );
  }
  const calls = countCall(dataDir, segment);
  const promoteFile = join(dataDir, 'promote');
  if (calls > PROMOTION_CALLS && existsSync(promoteFile)) {
    throw new PmsError(
      'PMS_ERR_PROMOTION',
      `the server (pid ${postmaster}) was asked to promote at the end of the archive (${segment} is not archived) and, ${calls - 1} calls later, has not: stopping recovery rather than waiting as a standby forever; to finish, replace standby.signal with recovery.signal and start it again`,
    );
  }
  writeFileSync(promoteFile, '', { mode: 0o600 });
  process.kill(postmaster, 'SIGUSR1');
  return { outcome: 'requested', postmaster, calls };
}

function postmasterPid(dataDir: string): number {
  const path = join(dataDir, 'postmaster.pid');
  let first: string | undefined;
  try {
    first = readFileSync(path, 'utf8').split('\n')[0];
  } catch (error) {
    throw new PmsError('PMS_ERR_PROMOTION', `cannot read ${path} to promote the server: ${(error as Error).message}`, { cause: error });
  }
  if (first === undefined || !/^[1-9]\d*$/.test(first)) {
    throw new PmsError('PMS_ERR_PROMOTION', `${path} does not start with a process id: not promoting`);
  }
  return Number(first);
}

function countCall(dataDir: string, segment: string): number {
  const root = join(dataDir, SPOOL_ROOT);
  const path = join(root, REQUESTS_FILE);
  let calls = 1;
  try {
    const [last, count] = readFileSync(path, 'utf8').trim().split(' ');
    if (last === segment && count !== undefined && /^\d+$/.test(count)) calls = Number(count) + 1;
  } catch {
    // The first request of this recovery.
  }
  mkdirSync(root, { recursive: true, mode: 0o700 });
  writeFileSync(path, `${segment} ${calls}\n`, { mode: 0o600 });
  return calls;
}

/**
 * Our parent, its parent, and so on (four levels): restore_command runs under a shell started by
 * the startup process, whose parent is the postmaster. Read from /proc (Linux, as the images).
 */
export function processAncestors(levels = 4): number[] {
  const found: number[] = [];
  let pid = process.ppid;
  for (let i = 0; i < levels && pid > 1; i += 1) {
    found.push(pid);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so parse after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!Number.isInteger(ppid)) break;
      pid = ppid;
    } catch {
      break;
    }
  }
  return found;
}
