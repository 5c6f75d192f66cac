import { createLogicalBackup } from '../../backup/create-logical-backup.js';
import { loadBackupConfig, requireRepository } from '../../config/config.js';
import { loadRecipients } from '../../crypto/keys.js';
import { openStorage } from '../../storage/open-storage.js';
import { ProgressLine, formatBytes } from '../progress.js';

export async function runCreate(options: { json?: boolean }): Promise<number> {
  const config = loadBackupConfig(process.env, { repository: true, encryption: true });
  const recipients = await loadRecipients(config.keys.publicKeyFile ?? '', config.keys.keyId ?? '');
  const storage = openStorage(requireRepository(config));
  const progress = new ProgressLine();
  const started = Date.now();
  try {
    const manifest = await createLogicalBackup({
      config,
      storage,
      recipients,
      onProgress: (p) => {
        const seconds = Math.max(0.001, (Date.now() - started) / 1000);
        progress.update(`${p.phase}: ${formatBytes(p.plainBytes)} dumped, ${formatBytes(p.storedBytes)} stored (${formatBytes(p.plainBytes / seconds)}/s)`);
      },
    });
    progress.done();
    if (options.json) {
      process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
    } else {
      const rows = manifest.tables.reduce((sum, t) => sum + t.rows, 0);
      process.stdout.write(
        [
          `backup ${manifest.id} complete`,
          `  database   ${manifest.database} (PostgreSQL ${manifest.serverVersion})`,
          `  tables     ${manifest.tables.length} (${rows} rows)`,
          `  size       ${formatBytes(manifest.bytes.plain)} dumped, ${formatBytes(manifest.bytes.compressed)} compressed, ${formatBytes(manifest.bytes.stored)} stored`,
          `  duration   ${manifest.durationSeconds.toFixed(1)} s`,
          `  encrypted  to ${manifest.keyFingerprints.join(', ')}`,
          `  location   ${storage.location} ${manifest.objects.map((o) => o.key).join(', ')}`,
          '',
        ].join('\n'),
      );
    }
    return 0;
  } finally {
    progress.done();
    await storage.close();
  }
}
