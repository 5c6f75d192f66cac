import { setTimeout as sleep } from 'node:timers/promises';
import { toPmsError } from '../../cli/exit-boundary.js';
import { startAtBackupStart } from './prefetch/backup-start.js';
import { isSpoolable } from './prefetch/spool.js';

/**
 * restore_command's exit status is a contract with PostgreSQL: 1 means "not archived" (end of
 * WAL: recovery finishes or promotes), while any status above 125 makes recovery stop. Every
 * failure that is not a clean "not found" therefore exits 200, so a network, key or integrity
 * problem can never be mistaken for the end of the archive and promote a server early.
 */
export const WAL_FETCH_EXIT = { fetched: 0, notFound: 1, fatal: 200 } as const;

/** How long wal-fetch waits after asking for promotion, for the request to reach the startup process. */
const PROMOTION_RELAY_MS = 100;

/** The exit status table lives in cli/wal-commands.ts, shown by `pms-backup wal-fetch --help`. */

export interface WalFetchOptions {
  readonly allowUnsigned?: boolean;
  /** Written by restore --pitr --target-time latest: promote the standby when a segment is not archived (promote-at-end.ts). */
  readonly promoteAtEnd?: boolean;
}

export async function runWalFetch(name: string, path: string, options: WalFetchOptions = {}): Promise<number> {
  // If a bug ever left a promise unsettled, Node would exit 13, which PostgreSQL reads as "not
  // archived" and may promote early: any exit without a result is turned into the fatal status.
  let settled = false;
  process.once('exit', () => {
    if (!settled) process.exitCode = WAL_FETCH_EXIT.fatal;
  });
  try {
    // What a "not archived" answer needs comes first: at both ends of recovery PostgreSQL asks
    // for files that are not there (history files of later timelines, the segment after the
    // last), and each such call then exits without loading OpenPGP, keys or trusted signers.
    const [{ loadBackupConfig }, { openStorage }, { readControlSystemIdentifier }, { parseWalFileName }, { walObjectKey }] =
      await Promise.all([
        import('../../config/config.js'),
        import('../../storage/open-storage.js'),
        import('../../wal/wal-page-header.js'),
        import('../../wal/wal-file-name.js'),
        import('../../repository/wal-layout.js'),
      ]);
    const config = loadBackupConfig(process.env, { repository: true, decryption: true, trust: true });
    const systemIdentifier = await readControlSystemIdentifier(process.cwd());
    const file = parseWalFileName(name);
    const storage = openStorage(config.repository);
    try {
      // The prefetcher is told (and started) before this process loads its keys and fetches this
      // segment, so its own start-up (Node, modules, keys) overlaps ours.
      // The history probe that opens a recovery to the newest timeline starts it on the base
      // backup's first segment (prefetch/backup-start.ts).
      const allowUnsigned = options.allowUnsigned ?? false;
      const prefetch =
        config.operations.walPrefetch <= 0
          ? undefined
          : isSpoolable(name)
            ? startPrefetch(name, systemIdentifier, allowUnsigned)
            : file?.kind === 'history'
              ? startPrefetchAtBackupStart(name, systemIdentifier, allowUnsigned)
              : undefined;
      const [head] = await Promise.all([
        file !== undefined && file.kind !== 'partial' ? storage.head(walObjectKey(file)) : undefined,
        prefetch,
      ]);
      if (file !== undefined && file.kind !== 'partial' && head === undefined) {
        if (options.promoteAtEnd && file.kind === 'segment') await promoteAtEnd(name);
        settled = true;
        return WAL_FETCH_EXIT.notFound;
      }
      const [{ loadDecryptionKeys }, { loadTrustedSigners }, { fetchWalFile }] = await Promise.all([
        import('../../crypto/keys.js'),
        import('../../crypto/signing.js'),
        import('./fetch-wal-file.js'),
      ]);
      const [keys, trusted] = await Promise.all([
        loadDecryptionKeys(config.keys.privateKeyFile, config.keys.passphraseFile),
        loadTrustedSigners(config.keys.trustedSignersFile, new Date(), config.keys.walSignerFingerprints),
      ]);
      const trust = { trusted, ...(options.allowUnsigned ? { allowUnsigned: true } : {}) };
      const result = await fetchWalFile({ storage, keys, trust, name, destination: path, systemIdentifier, head });
      if (result.outcome !== 'fetched' && options.promoteAtEnd && file?.kind === 'segment') await promoteAtEnd(name);
      settled = true;
      return result.outcome === 'fetched' ? WAL_FETCH_EXIT.fetched : WAL_FETCH_EXIT.notFound;
    } finally {
      await storage.close();
    }
  } catch (error) {
    settled = true;
    const pms = toPmsError(error);
    process.stderr.write(`pms-backup wal-fetch ${name}: error ${pms.code}: ${pms.message}\n`);
    return WAL_FETCH_EXIT.fatal;
  }
}

/** The end of the archive for a standby restore --pitr prepared: ask it to promote (a failure is fatal: see promote-at-end.ts). */
async function promoteAtEnd(name: string): Promise<void> {
  const { requestPromotion } = await import('./promote-at-end.js');
  const request = requestPromotion(process.cwd(), name);
  if (request.outcome === 'requested') {
    // The postmaster passes the request on to the startup process by a signal of its own; exiting
    // at once, PostgreSQL often looks for it before it arrived and calls us once more (~0.25 s).
    await sleep(PROMOTION_RELAY_MS);
    process.stderr.write(
      `pms-backup wal-fetch ${name}: not archived, the end of the archive: asked the server (pid ${request.postmaster}) to promote${request.calls > 1 ? ` (call ${request.calls})` : ''}\n`,
    );
  }
}

/**
 * Before any segment was asked for in this recovery (no `wanted` mark yet) and while backup_label
 * is there: the prefetcher starts on the segment the base backup started in, so its start-up and
 * first fetches overlap this probe and PostgreSQL's own start. The fast path has normally done
 * it already (prefetch/fast-path.ts), before this process loaded its configuration.
 */
async function startPrefetchAtBackupStart(name: string, systemIdentifier: string, allowUnsigned: boolean): Promise<void> {
  try {
    await startAtBackupStart(process.cwd(), systemIdentifier, allowUnsigned);
  } catch (error) {
    notStarted(name, error);
  }
}

/** Tells the prefetcher (starting it if none runs) that recovery wants `name`. A failure here only costs speed. */
async function startPrefetch(name: string, systemIdentifier: string, allowUnsigned: boolean): Promise<void> {
  try {
    const { ensurePrefetcher } = await import('./prefetch/start-prefetcher.js');
    await ensurePrefetcher({ dataDir: process.cwd(), systemIdentifier, allowUnsigned, wanted: name });
  } catch (error) {
    notStarted(name, error);
  }
}

function notStarted(name: string, error: unknown): void {
  process.stderr.write(
    `pms-backup wal-fetch ${name}: prefetch not started (${(error as Error).message}); fetching one segment at a time\n`,
  );
}
