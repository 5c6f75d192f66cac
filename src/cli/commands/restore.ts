import { resolveBackup } from '../../catalog/backup-catalog.js';
import { loadDecryptionKeys } from '../../crypto/keys.js';
import { restoreLogicalBackup } from '../../restore/restore-logical-backup.js';
import { runBackupCommand } from '../backup-command.js';
import { ProgressLine, formatBytes } from '../progress.js';

export interface RestoreCommandOptions {
  readonly json?: boolean;
  readonly targetDb: string;
  readonly noOwner?: boolean;
}

export async function runRestore(reference: string, options: RestoreCommandOptions): Promise<number> {
  return runBackupCommand({ name: 'restore', logStream: 'backup', needs: { repository: true, decryption: true } }, async ({ config, storage }) => {
    const keys = await loadDecryptionKeys(config.keys.privateKeyFile ?? '', config.keys.passphraseFile);
    const repository = storage();
    const progress = new ProgressLine();
    const manifest = await resolveBackup(repository, reference, 'logical');
    const result = await restoreLogicalBackup({
      manifest,
      storage: repository,
      postgres: config.postgres,
      keys,
      targetDb: options.targetDb,
      noOwner: options.noOwner ?? false,
      onProgress: (done, total) => progress.update(`restoring ${manifest.id}: ${formatBytes(done)} of ${formatBytes(total)}`),
    }).finally(() => progress.done());
    if (options.json) {
      process.stdout.write(`${JSON.stringify({ ok: true, ...result }, null, 2)}\n`);
    } else {
      const rows = result.tables.reduce((sum, t) => sum + t.rows, 0);
      process.stdout.write(
        `restored backup ${result.id} into database ${result.targetDb}: ${result.tables.length} tables, ${rows} rows, ${formatBytes(result.bytes)} fetched in ${result.durationSeconds.toFixed(1)} s; sha256, OpenPGP integrity and row counts verified\n`,
      );
    }
    return { exitCode: 0, backupId: result.id, details: { targetDb: result.targetDb, tables: result.tables.length } };
  });
}
