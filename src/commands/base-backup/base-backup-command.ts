import { createBaseBackup } from './create-base-backup.js';
import { loadRecipients } from '../../crypto/keys.js';
import { runBackupCommand } from '../../cli/backup-command.js';
import { ProgressLine, formatBytes } from '../../cli/progress.js';

export async function runBaseBackup(options: { json?: boolean; walTimeout?: number }): Promise<number> {
  return runBackupCommand(
    {
      name: 'base-backup',
      logStream: 'backup',
      needs: { repository: true, encryption: true, signing: true, trust: true, postgres: true },
      interruptible: true,
    },
    async ({ config, storage, signal, signer, trust, logger }) => {
      // Three independent key files, read and parsed side by side while the server is asked
      // for the backup (createBaseBackup awaits each where it first needs it).
      const recipients = loadRecipients(config.keys.publicKeyFile, config.keys.keyId);
      const signingKey = signer();
      const trustPolicy = trust();
      for (const loading of [recipients, signingKey, trustPolicy]) loading.catch(() => undefined);
      const progress = new ProgressLine({ logger });
      const manifest = await createBaseBackup({
        config,
        storage: storage(),
        recipients,
        signer: signingKey,
        trust: trustPolicy,
        signal,
        ...(options.walTimeout === undefined ? {} : { walTimeoutSeconds: options.walTimeout }),
        onProgress: (p) => progress.update(`${p.phase}: ${formatBytes(p.plainBytes)} copied, ${formatBytes(p.storedBytes)} stored`),
      }).finally(() => progress.done());
      if (options.json) {
        process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
      } else {
        process.stdout.write(
          [
            `base backup ${manifest.id} complete`,
            `  server     PostgreSQL ${manifest.serverVersion}, system ${manifest.systemIdentifier}, timeline ${manifest.timeline}`,
            `  WAL        ${manifest.startLsn} (${manifest.startWalSegment}) to ${manifest.stopLsn} (${manifest.stopWalSegment}), archived`,
            `  size       ${formatBytes(manifest.bytes.plain)} copied, ${formatBytes(manifest.bytes.compressed)} compressed, ${formatBytes(manifest.bytes.stored)} stored`,
            `  duration   ${manifest.durationSeconds.toFixed(1)} s`,
            `  encrypted  to ${manifest.keyFingerprints.join(', ')}`,
            `  restorable to any time after ${manifest.finishedAt} covered by the WAL archive`,
            '',
          ].join('\n'),
        );
      }
      return {
        exitCode: 0,
        backupId: manifest.id,
        metrics: { backupSizeBytes: manifest.bytes.stored },
        details: { kind: 'base', stopWalSegment: manifest.stopWalSegment },
      };
    },
  );
}
