import { currentActor } from '../../repository/audit-log.js';
import { observeRecipientKeys } from '../../repository/key-observer.js';
import { type BackupServer, createLogicalBackup } from './create-logical-backup.js';
import { usingRepositoryLock } from '../../repository/repository-lock.js';
import { loadRecipients } from '../../crypto/keys.js';
import { runBackupCommand } from '../../cli/backup-command.js';
import { ProgressLine, formatBytes } from '../../cli/progress.js';

export async function runCreate(options: { json?: boolean }): Promise<number> {
  return runBackupCommand(
    {
      name: 'create',
      logStream: 'backup',
      needs: { repository: true, encryption: true, signing: true, postgres: true },
      interruptible: true,
    },
    async ({ config, storage, logger, signal, signer: loadSigner }) => {
      const recipients = await loadRecipients(config.keys.publicKeyFile, config.keys.keyId);
      const signer = await loadSigner();
      const repository = storage();
      const progress = new ProgressLine({ logger });
      const started = Date.now();
      let source: BackupServer | undefined;
      const manifest = await usingRepositoryLock(
        repository,
        'create',
        async () => {
          // Recorded alongside the backup, not before it: it is bookkeeping, not a prerequisite.
          const observing = observeRecipientKeys(
            repository,
            recipients.descriptions.map((d) => d.fingerprint),
            currentActor(config.operations.podName),
            signer,
          ).catch((error: unknown) => logger.warn('could not record the recipient keys', { error: (error as Error).message }));
          try {
            return await createLogicalBackup({
              config,
              storage: repository,
              recipients,
              signer,
              signal,
              onSource: (chosen) => (source = chosen),
              onProgress: (p) => {
                const seconds = Math.max(0.001, (Date.now() - started) / 1000);
                progress.update(
                  `${p.phase}: ${formatBytes(p.plainBytes)} dumped, ${formatBytes(p.storedBytes)} stored (${formatBytes(p.plainBytes / seconds)}/s)`,
                );
              },
            });
          } finally {
            progress.done();
            await observing;
          }
        },
        (reason) => logger.warn(reason),
      );
      if (options.json) {
        process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
      } else {
        const rows = manifest.tables.reduce((sum, t) => sum + t.rows, 0);
        process.stdout.write(
          [
            `backup ${manifest.id} complete`,
            `  database   ${manifest.database} (PostgreSQL ${manifest.serverVersion})`,
            ...(source ? [`  server     ${source.server}${source.role ? ` (${source.role})` : ''}`] : []),
            `  tables     ${manifest.tables.length} (${rows} rows)`,
            `  size       ${formatBytes(manifest.bytes.plain)} dumped, ${formatBytes(manifest.bytes.compressed)} compressed, ${formatBytes(manifest.bytes.stored)} stored`,
            `  duration   ${manifest.durationSeconds.toFixed(1)} s`,
            `  encrypted  to ${manifest.keyFingerprints.join(', ')}`,
            `  location   ${repository.location} ${manifest.objects.map((o) => o.key).join(', ')}`,
            '',
          ].join('\n'),
        );
      }
      return {
        exitCode: 0,
        backupId: manifest.id,
        details: {
          kind: 'logical',
          bytesStored: manifest.bytes.stored,
          bytesPlain: manifest.bytes.plain,
          tables: manifest.tables.length,
          // Which member a POSTGRES_HOST list gave (BACKUP_FROM_STANDBY): in the log and the audit record.
          ...(source ? { server: source.server, ...(source.role ? { serverRole: source.role } : {}) } : {}),
        },
        metrics: {
          backupSizeBytes: manifest.bytes.stored,
          backupAgeSeconds: 0,
          keys: recipients.descriptions.map((d) => ({
            fingerprint: d.fingerprint,
            expiresAt: d.expiresAt ? new Date(d.expiresAt) : undefined,
          })),
        },
      };
    },
  );
}
