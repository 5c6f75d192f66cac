import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadDrConfig } from '../../config/config.js';
import { runMonitorChecks } from './monitor-checks.js';
import { openStorage } from '../../storage/open-storage.js';
import { runBackupCommand } from '../../cli/backup-command.js';

export async function runMonitor(options: { json?: boolean }): Promise<number> {
  return runBackupCommand(
    { name: 'monitor', logStream: 'monitoring', needs: { repository: true, trust: true } },
    async ({ config, storage, logger, trust }) => {
      const drConfig = loadDrConfig(process.env, undefined);
      const drStorage = drConfig ? openStorage(drConfig.repository) : undefined;
      const report = await runMonitorChecks(
        config,
        storage(),
        await trust(),
        new Date(),
        drStorage && drConfig ? { storage: drStorage, maxLagHours: drConfig.maxLagHours } : undefined,
      ).finally(() => drStorage?.close());
      const day = report.checkedAt.slice(0, 10).replace(/-/g, '');
      const file = join(config.operations.logDir, `backup_monitoring_${day}.json`);
      try {
        mkdirSync(config.operations.logDir, { recursive: true });
        writeFileSync(`${file}.tmp`, `${JSON.stringify(report, null, 2)}\n`);
        renameSync(`${file}.tmp`, file);
      } catch (error) {
        logger.warn(`could not write ${file}`, { error: (error as NodeJS.ErrnoException).code ?? (error as Error).message });
      }
      for (const check of report.checks)
        (check.ok ? logger.info : logger.error)(`check ${check.name}: ${check.ok ? 'ok' : 'FAILED'}`, { detail: check.detail });
      if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else
        process.stdout.write(
          `${report.checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(15)} ${c.detail}`).join('\n')}\n${report.ok ? 'all checks passed' : 'ALERT: some checks failed'}\n`,
        );
      const { facts } = report;
      return {
        exitCode: report.ok ? 0 : 1,
        backupId: facts.newestBackupId ?? null,
        details: { ok: report.ok, failed: report.checks.filter((c) => !c.ok).map((c) => c.name) },
        metrics: {
          repositoryUp: facts.repositoryUp,
          backupAgeSeconds: facts.backupAgeSeconds,
          backupSizeBytes: facts.backupSizeBytes,
          sizeDeviationRatio: facts.sizeDeviationRatio,
          drLagSeconds: facts.drLagSeconds,
          walLastArchivedAt: facts.walLastArchivedAt ? new Date(facts.walLastArchivedAt) : undefined,
          walGapSegments: facts.walGapSegments,
          untrustedBackups: facts.untrustedBackups,
          untrustedWal: facts.untrustedWal,
          audit: facts.audit,
          cluster: facts.cluster
            ? {
                syncStandbys: facts.cluster.syncStandbys,
                replicationLagSeconds: facts.cluster.replicationLagSeconds,
                maxReplicationLagSeconds: facts.maxReplicationLagSeconds ?? 0,
                timeline: facts.cluster.timeline,
                lastFailoverAt: facts.cluster.lastFailoverAt ? new Date(facts.cluster.lastFailoverAt) : undefined,
                leaderUp: facts.cluster.leader !== undefined,
              }
            : undefined,
          keys: facts.keys.map((k) => ({ fingerprint: k.fingerprint, expiresAt: k.expiresAt ? new Date(k.expiresAt) : undefined })),
          signingKeys: facts.signingKeys.map((k) => ({
            fingerprint: k.fingerprint,
            role: k.role,
            expiresAt: k.expiresAt ? new Date(k.expiresAt) : undefined,
          })),
          verification: facts.verification
            ? {
                ok: facts.verification.ok,
                durationSeconds: facts.verification.durationSeconds,
                finishedAt: new Date(facts.verification.verifiedAt),
              }
            : undefined,
        },
      };
    },
  );
}
