import { ProgressLine } from '../../cli/progress.js';
import { PmsError } from '../../errors/catalogue.js';
import { listBackups, resolveBackup } from '../../repository/backup-catalog.js';
import { verifyBaseBackup } from './verify-base-backup.js';
import { loadDecryptionKeys } from '../../crypto/keys.js';
import { type Check, type Verification, writeVerification } from '../../repository/verification-record.js';
import { verifyLogicalBackup } from './verify-logical-backup.js';
import { runBackupCommand } from '../../cli/backup-command.js';

export async function runVerify(
  reference: string,
  options: { json?: boolean; kind?: 'logical' | 'base'; allowUnsigned?: boolean },
): Promise<number> {
  return runBackupCommand(
    {
      name: 'verify',
      logStream: 'verification',
      needs: { repository: true, decryption: true, trust: true, signing: true },
      interruptible: true,
    },
    async ({ config, storage, logger, startedAt, signal, trust, signer }) => {
      const keys = await loadDecryptionKeys(config.keys.privateKeyFile, config.keys.passphraseFile);
      const trustPolicy = await trust({ allowUnsigned: options.allowUnsigned ?? false });
      const signingKey = await signer();
      const repository = storage();
      const kind =
        reference === 'latest'
          ? (options.kind ?? 'logical')
          : (await listBackups(repository, trustPolicy)).find((e) => e.id === reference)?.kind === 'base'
            ? 'base'
            : 'logical';
      const manifest = await resolveBackup(repository, reference, kind, trustPolicy, {
        onNote: (note) => {
          logger.warn(note);
        },
      });
      const attachSocketDir = config.operations.verifyServerSocketDir;
      if (attachSocketDir !== undefined && manifest.kind === 'base')
        throw new PmsError(
          'PMS_ERR_CONFIG',
          `backup ${manifest.id} is a base backup: its verify recovers a data directory in a sandbox verify starts itself (as root), so BACKUP_VERIFY_SERVER_SOCKET_DIR (verify-server) serves logical backups only; unset it and run verify as root`,
        );
      logger.info('verifying backup', { backupId: manifest.id, kind: manifest.kind });
      const progress = new ProgressLine({ logger });
      const checks: Check[] =
        manifest.kind === 'base'
          ? await verifyBaseBackup({ manifest, storage: repository, keys, trust: trustPolicy, serverEnv: process.env, signal })
          : await verifyLogicalBackup({
              onProgress: (text) => progress.update(`verifying ${manifest.id}: ${text}`),
              manifest,
              storage: repository,
              keys,
              trust: trustPolicy,
              signal,
              ...(attachSocketDir !== undefined ? { attachSocketDir } : {}),
            });
      progress.done();
      // An interrupted verification says nothing about the backup: record no result for it.
      if (signal.aborted) throw signal.reason;
      const finishedAt = new Date();
      const verification: Verification = {
        id: manifest.id,
        ok: checks.every((c) => c.ok),
        checks,
        durationSeconds: (finishedAt.getTime() - startedAt.getTime()) / 1000,
        verifiedAt: finishedAt.toISOString(),
      };
      await writeVerification(repository, verification, signingKey);
      for (const check of checks)
        (check.ok ? logger.info : logger.error)(`check ${check.name}: ${check.ok ? 'ok' : 'FAILED'}`, {
          backupId: manifest.id,
          detail: check.detail,
        });
      if (options.json) {
        const { verifiedAt: _at, ...contract } = verification;
        process.stdout.write(`${JSON.stringify(contract, null, 2)}\n`);
      } else {
        process.stdout.write(
          `${checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(18)} ${c.detail}`).join('\n')}\nbackup ${manifest.id}: ${verification.ok ? 'VERIFIED' : 'VERIFICATION FAILED'} in ${verification.durationSeconds.toFixed(1)} s\n`,
        );
      }
      return {
        exitCode: verification.ok ? 0 : 1,
        backupId: manifest.id,
        details: { ok: verification.ok, failed: checks.filter((c) => !c.ok).map((c) => c.name) },
        metrics: { verification: { ok: verification.ok, durationSeconds: verification.durationSeconds, finishedAt } },
      };
    },
  );
}
