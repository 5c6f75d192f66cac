import { dirname, resolve } from 'node:path';

export interface WalPushOptions {
  /** .ready files archived ahead of PostgreSQL (default 32; 0 archives only the requested file, in this process). */
  readonly readAhead?: number;
  /** Files archived at once (default 2). */
  readonly concurrency?: number;
  /** false: archive in this process even when a server runs (no background pusher). */
  readonly background?: boolean;
}

/**
 * `pms-backup wal-push %p` (archive_command). The cheap paths come first and import nothing
 * heavy (config, zod, openpgp, storage SDKs): a file already archived ahead (its marker), then
 * the background pusher of this pg_wal directory if one runs. Without one, a pusher is started
 * and asked; with no server behind the directory (a manual run), the file and up to `readAhead`
 * others are archived in this process.
 */
export async function runWalPush(path: string, options: WalPushOptions = {}): Promise<number> {
  const [{ consumePushMarker, postmasterOf }, { archiveViaPusher }] = await Promise.all([
    import('./push-marker.js'),
    import('./wal-push-client.js'),
  ]);
  if (await consumePushMarker(path)) return 0;
  const readAhead = options.readAhead ?? 32;
  const concurrency = options.concurrency ?? 2;
  const walDir = dirname(resolve(path));
  if (options.background !== false && readAhead > 0 && (await postmasterOf(walDir)) !== undefined) {
    if ((await archiveViaPusher(path)) === 0) return 0;
    const { startPusher } = await import('./start-pusher.js');
    await startPusher(walDir, { readAhead, concurrency });
    if ((await archiveViaPusher(path)) === 0) return 0;
    const { PmsError } = await import('../../errors/catalogue.js');
    throw new PmsError('PMS_ERR_INTERNAL', `the background pusher for ${walDir} started but does not answer`);
  }
  return archiveInProcess(path, readAhead, concurrency);
}

async function archiveInProcess(path: string, readAhead: number, concurrency: number): Promise<number> {
  const [{ loadBackupConfig }, { loadRecipients }, { loadSigningKey, loadTrustedSigners }, { openStorage }, { archiveWal }] =
    await Promise.all([
      import('../../config/config.js'),
      import('../../crypto/keys.js'),
      import('../../crypto/signing.js'),
      import('../../storage/open-storage.js'),
      import('./wal-push.js'),
    ]);
  const config = loadBackupConfig(process.env, { repository: true, encryption: true, signing: true, trust: true });
  const [recipients, signer, trusted] = await Promise.all([
    loadRecipients(config.keys.publicKeyFile, config.keys.keyId),
    loadSigningKey(config.keys.signingKeyFile, config.keys.signingPassphraseFile),
    loadTrustedSigners(config.keys.trustedSignersFile, new Date(), config.keys.walSignerFingerprints),
  ]);
  const storage = openStorage(config.repository);
  try {
    const result = await archiveWal({ storage, recipients, signer, trust: { trusted }, path, readAhead, concurrency });
    // archive_command's stderr lands in the server log: one line, and only when it matters.
    if (result.aheadProblem)
      process.stderr.write(`pms-backup wal-push: archived ${result.requested.name}; archiving ahead stopped: ${result.aheadProblem}\n`);
    return 0;
  } finally {
    await storage.close();
  }
}
