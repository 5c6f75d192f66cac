import { usingRepositoryLock } from '../../repository/repository-lock.js';
import { loadDrConfig } from '../../config/config.js';
import { copyToDr } from './copy-to-dr.js';
import { ERRORS, PmsError } from '../../errors/catalogue.js';
import { openStorage } from '../../storage/open-storage.js';
import { runBackupCommand } from '../../cli/backup-command.js';
import { ProgressLine, formatBytes } from '../../cli/progress.js';

export async function runCopy(options: { to?: string; json?: boolean }): Promise<number> {
  const dr = loadDrConfig(process.env, options.to);
  if (!dr) throw new PmsError('PMS_ERR_USAGE', 'copy needs --to s3://bucket/prefix (or BACKUP_DR_REPOSITORY)');
  return runBackupCommand(
    { name: 'copy', logStream: 'backup', needs: { repository: true, trust: true, signing: true } },
    async ({ storage, logger, trust }) => {
      const from = storage();
      const trustPolicy = await trust();
      const to = openStorage(dr.repository);
      if (to.location === from.location) throw new PmsError('PMS_ERR_USAGE', `--to ${to.location} is the primary repository itself`);
      const progress = new ProgressLine({ logger });
      try {
        // The DR repository's lock keeps its own prune from deleting a backup this run is still
        // copying (its manifest comes last, so mid-copy it looks like an incomplete leftover).
        const result = await usingRepositoryLock(
          to,
          'copy',
          () =>
            copyToDr(from, to, trustPolicy, (p) =>
              progress.update(`copying to ${to.location}: ${p.copied} backups copied, ${formatBytes(p.bytes)} — ${p.current}`),
            ),
          (reason) => logger.warn(reason),
        );
        progress.done();
        logger.info('copy finished', {
          to: to.location,
          backupsCopied: result.backupsCopied.length,
          walCopied: result.walCopied,
          bytes: result.bytes,
        });
        for (const refused of result.walRefused) logger.error('WAL object not copied', { key: refused.key, reason: refused.reason });
        if (result.walLegacyCopied > 0) {
          logger.warn(
            `${result.walLegacyCopied} WAL file(s) copied without a sealed signature (archived before wal-push sealed WAL): only wal-fetch, with the key, can prove them`,
          );
        }
        const ok = result.walRefused.length === 0;
        if (options.json) process.stdout.write(`${JSON.stringify({ ok, to: to.location, ...result }, null, 2)}\n`);
        else
          process.stdout.write(
            `copied ${result.backupsCopied.length} backup(s) and ${result.walCopied} WAL file(s) (${formatBytes(result.bytes)}) to ${to.location}; ${result.backupsSkipped} backup(s) and ${result.walSkipped} WAL file(s) were already there; every copy's sha256 checked\n` +
              result.walRefused
                .map((r) => `REFUSED ${r.key}: ${r.reason} (treat as a security incident: docs/runbook.md#pmsbackupuntrustedwal)\n`)
                .join(''),
          );
        // Everything trusted was copied; a refused object still fails the run (exit 4), so the job shows it.
        return {
          exitCode: ok ? 0 : ERRORS.PMS_ERR_UNTRUSTED.exitCode,
          details: {
            to: to.location,
            backupsCopied: result.backupsCopied,
            walCopied: result.walCopied,
            walRefused: result.walRefused.map((r) => r.key),
            walLegacyCopied: result.walLegacyCopied,
          },
        };
      } finally {
        progress.done();
        await to.close();
      }
    },
  );
}
