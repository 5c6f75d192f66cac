import { resolveBackup } from '../../catalog/backup-catalog.js';
import { loadBackupConfig, requireRepository } from '../../config/config.js';
import { loadDecryptionKeys } from '../../crypto/keys.js';
import { restoreLogicalBackup } from '../../restore/restore-logical-backup.js';
import { openStorage } from '../../storage/open-storage.js';
import { ProgressLine, formatBytes } from '../progress.js';

export interface RestoreCommandOptions {
  readonly json?: boolean;
  readonly targetDb: string;
  readonly noOwner?: boolean;
}

export async function runRestore(reference: string, options: RestoreCommandOptions): Promise<number> {
  const config = loadBackupConfig(process.env, { repository: true, decryption: true });
  const keys = await loadDecryptionKeys(config.keys.privateKeyFile ?? '', config.keys.passphraseFile);
  const storage = openStorage(requireRepository(config));
  const progress = new ProgressLine();
  try {
    const manifest = await resolveBackup(storage, reference, 'logical');
    const result = await restoreLogicalBackup({
      manifest,
      storage,
      postgres: config.postgres,
      keys,
      targetDb: options.targetDb,
      noOwner: options.noOwner ?? false,
      onProgress: (done, total) => progress.update(`restoring ${manifest.id}: ${formatBytes(done)} of ${formatBytes(total)}`),
    });
    progress.done();
    if (options.json) {
      process.stdout.write(`${JSON.stringify({ ok: true, ...result }, null, 2)}\n`);
    } else {
      const rows = result.tables.reduce((sum, t) => sum + t.rows, 0);
      process.stdout.write(
        `restored backup ${result.id} into database ${result.targetDb}: ${result.tables.length} tables, ${rows} rows, ${formatBytes(result.bytes)} fetched in ${result.durationSeconds.toFixed(1)} s; sha256, OpenPGP integrity and row counts verified\n`,
      );
    }
    return 0;
  } finally {
    progress.done();
    await storage.close();
  }
}
