import { findPgProgram } from '../../../postgres/binaries.js';
import { loadDecryptionKeys } from '../../../crypto/keys.js';
import { parseTargetTime } from './choose-base-backup.js';
import { restorePitr } from './restore-pitr.js';
import { runBackupCommand } from '../../../cli/backup-command.js';
import { ProgressLine, formatBytes } from '../../../cli/progress.js';

export interface PitrRestoreCommandOptions {
  json?: boolean;
  targetTime: string;
  pgdata: string;
  base?: string;
  /** Accept a base backup made before signing; audited. */
  allowUnsigned?: boolean;
}

/** `pms-backup restore --pitr --target-time T --pgdata DIR [--base ID]`. */
export async function runPitrRestore(options: PitrRestoreCommandOptions): Promise<number> {
  const target = parseTargetTime(options.targetTime);
  return runBackupCommand(
    { name: 'restore-pitr', logStream: 'backup', needs: { repository: true, decryption: true, trust: true, signing: true } },
    async ({ config, storage, trust, logger, signer }) => {
      // The private key is decrypted (its passphrase's key derivation) while the base backup is
      // chosen; a key that fails still fails the restore, before anything is unpacked. The
      // signing key, needed only for the audit record at the end, is unlocked meanwhile too.
      const keys = loadDecryptionKeys(config.keys.privateKeyFile, config.keys.passphraseFile);
      keys.catch(() => undefined);
      signer().catch(() => undefined);
      const trustPolicy = await trust({ allowUnsigned: options.allowUnsigned ?? false });
      const progress = new ProgressLine({ logger });
      const result = await restorePitr({
        storage: storage(),
        keys,
        trust: trustPolicy,
        target,
        dataDir: options.pgdata,
        prefetch: config.operations.walPrefetch > 0,
        ...(options.base === undefined ? {} : { base: options.base }),
        onProgress: (done, total) => progress.update(`unpacking: ${formatBytes(done)} of ${formatBytes(total)}`),
      }).finally(() => progress.done());
      for (const m of result.missingIncludes)
        logger.warn(`the restored postgresql.conf has ${m.directive} '${m.path}', which this host lacks`, { ...m });
      const asUser = result.osUser ? `runuser -u ${result.osUser} -- ` : '';
      const start = `${asUser}${findPgProgram('pg_ctl')} -D ${result.dataDir} -l ${result.dataDir}/recovery.log start`;
      if (options.json) {
        process.stdout.write(
          `${JSON.stringify({ ok: true, baseBackup: result.base.id, dataDir: result.dataDir, target: result.target, restoreCommand: result.restoreCommand, startCommand: start, bytes: result.bytes, durationSeconds: result.durationSeconds, missingIncludes: result.missingIncludes }, null, 2)}\n`,
        );
      } else {
        process.stdout.write(
          [
            `base backup ${result.base.id} (finished ${result.base.finishedAt}, timeline ${result.base.timeline}) unpacked into ${result.dataDir}; sha256 and OpenPGP integrity verified`,
            `recovery target: ${result.target === 'latest' ? 'end of the WAL archive' : result.target} (then promote, new timeline)`,
            `restore_command: ${result.restoreCommand}`,
            '',
            'To recover, start PostgreSQL 15 on this directory with the same BACKUP_* environment (it needs',
            'BACKUP_REPOSITORY, BACKUP_GPG_PRIVATE_KEY_FILE and, if the key has one, BACKUP_GPG_PASSPHRASE_FILE):',
            `  ${start}`,
            '(add -o "-p 5433" if the damaged server still runs on this host and port)',
            'It replays archived WAL up to the target, promotes, and keeps archiving on a new timeline with its',
            'archive_command. Check the outcome in the log ("recovery stopping before commit ..." / "archive recovery complete").',
            ...result.missingIncludes.map(
              (m) =>
                `warning: the restored postgresql.conf has ${m.directive} '${m.path}', which this host lacks: the server will not start until it exists (a Patroni member includes its pod's configuration, docs/ha.md "Restoring a member's backup elsewhere") or is given its own: add -c config_file=FILE to -o`,
            ),
            '',
          ].join('\n'),
        );
      }
      return {
        exitCode: 0,
        backupId: result.base.id,
        details: { pitr: true, target: result.target, dataDir: result.dataDir, ...(options.allowUnsigned ? { allowUnsigned: true } : {}) },
      };
    },
  );
}
