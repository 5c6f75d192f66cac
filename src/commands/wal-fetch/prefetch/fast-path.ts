import { setTimeout as sleep } from 'node:timers/promises';
import { readControlSystemIdentifier } from '../../../wal/wal-page-header.js';
import { parseWalFileName } from '../../../wal/wal-file-name.js';
import { startAtBackupStart } from './backup-start.js';
import { inFlight, isSpoolable, livePrefetcher, markWanted, spoolDirectory, takeFromSpool, takePublished } from './spool.js';

/** How long a request waits for a segment the prefetcher is fetching right now before fetching it itself. */
const IN_FLIGHT_WAIT_MS = 60_000;
const POLL_MS = 10;
const FAST_PATH_FLAGS = new Set(['--allow-unsigned', '--promote-at-end']);

/**
 * `wal-fetch [--allow-unsigned] [--promote-at-end] %f %p` answered from the prefetch spool, before the CLI parser,
 * the configuration, keys, the S3 SDK or OpenPGP are loaded: PostgreSQL waits for every
 * restore_command call, so a hit costs a Node start, a rename and nothing else. Returns false
 * for anything it does not handle (a miss, other arguments, any error), and the caller runs the
 * ordinary wal-fetch, which is always correct; the exit contract is theirs.
 */
export async function serveFromSpool(args: readonly string[], dataDir = process.cwd()): Promise<boolean> {
  // The flags restore --pitr writes, in any order; --promote-at-end matters only on a miss,
  // which the ordinary wal-fetch handles.
  const flags = args.slice(0, -2);
  const rest = args.slice(-2);
  if (rest.length !== 2 || flags.some((flag) => !FAST_PATH_FLAGS.has(flag)) || new Set(flags).size !== flags.length) return false;
  const allowUnsigned = flags.includes('--allow-unsigned');
  const [name, destination] = rest as [string, string];
  if (parseWalFileName(name)?.kind === 'history' && !destination.startsWith('-')) {
    await headStart(dataDir, allowUnsigned);
    return false;
  }
  if (!isSpoolable(name) || destination.startsWith('-')) return false;
  let directory: string;
  let systemIdentifier: string;
  try {
    systemIdentifier = await readControlSystemIdentifier(dataDir);
    directory = spoolDirectory(dataDir, systemIdentifier, allowUnsigned);
    const served =
      takePublished(dataDir, directory, name, destination, systemIdentifier) ||
      takeFromSpool(directory, name, destination, systemIdentifier) ||
      (await waitForInFlight(dataDir, directory, name, destination, systemIdentifier));
    if (!served) return false;
  } catch {
    return false;
  }
  try {
    markWanted(directory, name);
    if (livePrefetcher(dataDir) === undefined) {
      // It went idle (PostgreSQL was slow to ask): start it again for the segments after this one.
      const { ensurePrefetcher } = await import('./start-prefetcher.js');
      await ensurePrefetcher({ dataDir, systemIdentifier, allowUnsigned });
    }
  } catch {
    // The segment is served; a prefetcher that cannot start only means later calls fetch themselves.
  }
  return true;
}

/** The prefetcher is fetching this very segment: waiting for it is cheaper than fetching it twice. */
async function waitForInFlight(dataDir: string, directory: string, name: string, destination: string, systemIdentifier: string) {
  const deadline = Date.now() + IN_FLIGHT_WAIT_MS;
  const taken = () =>
    takePublished(dataDir, directory, name, destination, systemIdentifier) || takeFromSpool(directory, name, destination, systemIdentifier);
  while (inFlight(directory, name) && livePrefetcher(dataDir) !== undefined && Date.now() < deadline) {
    await sleep(POLL_MS);
    if (taken()) return true;
  }
  return taken();
}

/**
 * The history probe that opens a recovery (no `wanted` mark yet, backup_label still there) starts
 * the prefetcher on the base backup's first segment here, before this process loads the
 * configuration and OpenPGP to answer the probe: the prefetcher's own start-up (~0.4 s of
 * modules and keys) then overlaps this call's instead of following it (docs/pitr.md, "The
 * prefetcher's head start"). The full wal-fetch still answers the probe and, finding the mark,
 * starts nothing again. BACKUP_WAL_PREFETCH is read raw here: 0 turns prefetch off, and any other
 * value the prefetcher itself parses with the rest of the configuration (a bad one stops it with
 * the reason in its log, and the full wal-fetch reports it to PostgreSQL).
 */
async function headStart(dataDir: string, allowUnsigned: boolean): Promise<void> {
  try {
    // The configuration's own rule (setting-reader.ts, intSchema): '' is unset, anything else is Number()ed.
    const depth = process.env['BACKUP_WAL_PREFETCH'];
    if (depth !== undefined && depth !== '' && Number(depth) === 0) return;
    await startAtBackupStart(dataDir, await readControlSystemIdentifier(dataDir), allowUnsigned);
  } catch {
    // Only speed depends on it: the full wal-fetch tries again and says why it could not.
  }
}
