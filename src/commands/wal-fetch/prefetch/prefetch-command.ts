import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { setTimeout as sleep } from 'node:timers/promises';
import { toPmsError } from '../../../cli/exit-boundary.js';
import { lowerPriority } from '../../../process/background-priority.js';
import { readControlSystemIdentifier } from '../../../wal/wal-page-header.js';
import { parseWalFileName, segmentName } from '../../../wal/wal-file-name.js';
import {
  LOG_FILE,
  claimFetch,
  livePrefetcher,
  readWanted,
  releasePrefetcherLock,
  spoolDirectory,
  spoolRoot,
  takePrefetcherLock,
} from './spool.js';

/**
 * `pms-backup wal-prefetch run`: the detached prefetcher wal-fetch starts (never run by hand).
 * Its environment is the allowlisted one every child gets; wal-fetch's configuration arrives as
 * JSON on stdin, is parsed once like any command's environment, and never touches argv.
 */
export async function runPrefetchWorker(options: { allowUnsigned?: boolean }): Promise<number> {
  const dataDir = process.cwd();
  const received = JSON.parse(await text(process.stdin)) as Record<string, string>;
  if (!takePrefetcherLock(dataDir)) return 0;
  let headClaim: { name: string; path: string } | undefined;
  // Recovery's startup process comes first: the prefetcher runs on what it leaves (BACKGROUND_NICE).
  lowerPriority();
  try {
    // The S3 SDK's default credential chain (no keys in BACKUP_*) reads the process environment.
    for (const [name, value] of Object.entries(received)) if (typeof value === 'string') process.env[name] = value;
    const systemIdentifier = await readControlSystemIdentifier(dataDir);
    const directory = spoolDirectory(dataDir, systemIdentifier, options.allowUnsigned ?? false);
    // Claimed before the configuration, keys, OpenPGP and the S3 SDK load (~0.2 s of modules and
    // the keys' S2K on Node 24), so recovery's next request waits for this process instead of
    // fetching the same segment beside it. A configuration error below removes the claim.
    headClaim = claimNextWanted(directory);
    const [{ loadBackupConfig }, { loadDecryptionKeys }, { loadTrustedSigners }, { openStorage }, { runPrefetcher }] = await Promise.all([
      import('../../../config/config.js'),
      import('../../../crypto/keys.js'),
      import('../../../crypto/signing.js'),
      import('../../../storage/open-storage.js'),
      import('./prefetcher.js'),
    ]);
    const config = loadBackupConfig(process.env, { repository: true, decryption: true, trust: true });
    if (config.operations.walPrefetch === 0) return 0;
    const [keys, trusted] = await Promise.all([
      loadDecryptionKeys(config.keys.privateKeyFile, config.keys.passphraseFile),
      loadTrustedSigners(config.keys.trustedSignersFile, new Date(), config.keys.walSignerFingerprints),
    ]);
    const storage = openStorage(config.repository);
    process.stderr.write(
      `${new Date().toISOString()} prefetcher ready ${Math.round(performance.now())} ms after its start (keys and signers loaded)${headClaim ? `, first ${headClaim.name}` : ''}\n`,
    );
    const abort = new AbortController();
    process.once('SIGTERM', () => abort.abort(new Error('recovery ended')));
    try {
      const outcome = await runPrefetcher({
        storage,
        keys,
        trust: { trusted, ...(options.allowUnsigned ? { allowUnsigned: true } : {}) },
        dataDir,
        directory,
        systemIdentifier,
        ...(headClaim ? { headClaim } : {}),
        depth: config.operations.walPrefetch,
        maxBytes: config.operations.walPrefetchMaxBytes,
        signal: abort.signal,
        log: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
      });
      process.stderr.write(
        `${new Date().toISOString()} prefetcher exits (${outcome.reason}): ${outcome.fetched} fetched, ${outcome.failed} failed, ${outcome.published} published in pg_wal\n`,
      );
    } finally {
      await storage.close();
    }
    return 0;
  } catch (error) {
    const pms = toPmsError(error);
    process.stderr.write(`${new Date().toISOString()} prefetcher stopped: error ${pms.code}: ${pms.message}\n`);
    return 1;
  } finally {
    if (headClaim) rmSync(headClaim.path, { force: true });
    releasePrefetcherLock(dataDir);
  }
}

/** Claims the segment after the `wanted` mark, the prefetcher's first fetch; undefined if there is none. */
function claimNextWanted(directory: string): { name: string; path: string } | undefined {
  const wanted = parseWalFileName(readWanted(directory) ?? '');
  if (wanted?.kind !== 'segment') return undefined;
  const name = segmentName(wanted.timeline, wanted.segment + 1);
  try {
    return { name, path: claimFetch(directory, name) };
  } catch {
    return undefined;
  }
}

/**
 * `pms-backup wal-prefetch clean`: recovery_end_command (restore --pitr writes it). Stops the
 * prefetcher and removes the spool: what it holds is of no use once recovery ended, and a
 * promoted server must not carry segments of its past around in pg_wal.
 */
export async function runPrefetchClean(dataDir = process.cwd()): Promise<number> {
  const pid = livePrefetcher(dataDir);
  if (pid !== undefined) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // It exited meanwhile.
    }
    for (let i = 0; i < 100 && livePrefetcher(dataDir) !== undefined; i += 1) await sleep(50);
  }
  // What the prefetcher did (and any segment it refused) stays on record in the server's log.
  const log = (() => {
    try {
      return readFileSync(join(spoolRoot(dataDir), LOG_FILE), 'utf8');
    } catch {
      return '';
    }
  })();
  for (const line of log.split('\n').filter(Boolean).slice(-20)) process.stderr.write(`pms-backup wal-prefetch: ${line}\n`);
  rmSync(spoolRoot(dataDir), { recursive: true, force: true, maxRetries: 5 });
  return 0;
}
