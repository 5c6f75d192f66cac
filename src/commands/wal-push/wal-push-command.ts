/**
 * `pms-backup wal-push %p` (archive_command). The cheap path, a file already archived ahead by
 * an earlier run of this same server, is checked before anything heavy (config, zod, openpgp,
 * storage SDKs) is even imported: PostgreSQL calls this once per segment.
 */
export async function runWalPush(path: string, options: { readAhead?: number } = {}): Promise<number> {
  const { consumePushMarker } = await import('./push-marker.js');
  if (await consumePushMarker(path)) return 0;
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
    const result = await archiveWal({
      storage,
      recipients,
      signer,
      trust: { trusted },
      path,
      ...(options.readAhead === undefined ? {} : { readAhead: options.readAhead }),
    });
    // archive_command's stderr lands in the server log: one line, and only when it matters.
    if (result.aheadProblem)
      process.stderr.write(`pms-backup wal-push: archived ${result.requested.name}; archiving ahead stopped: ${result.aheadProblem}\n`);
    return 0;
  } finally {
    await storage.close();
  }
}
