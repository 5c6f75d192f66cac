import { usingRepositoryLock } from '../../repository/repository-lock.js';
import { type PruneDecision, pruneBackups } from './prune-backups.js';
import { runBackupCommand } from '../../cli/backup-command.js';
import { formatBytes } from '../../cli/progress.js';

export async function runPrune(options: { json?: boolean; dryRun?: boolean }): Promise<number> {
  return runBackupCommand(
    { name: 'prune', logStream: 'backup', needs: { repository: true, trust: true, signing: true } },
    async ({ config, storage, logger, trust }) => {
      const repository = storage();
      const trustPolicy = await trust();
      const dryRun = options.dryRun ?? false;
      const result = await usingRepositoryLock(
        repository,
        'prune',
        () => pruneBackups(repository, trustPolicy, config.retentionDays, { dryRun }),
        (reason) => logger.warn(reason),
      );
      const held = (d: PruneDecision): boolean => d.lockedUntil !== undefined;
      for (const d of result.decisions.filter((x) => x.action === 'delete')) {
        if (held(d))
          logger.warn(`backup ${d.id} is due for deletion but Object Lock retains it ${lockPhrase(d.lockedUntil)}`, { backupId: d.id });
        else logger.info(`${dryRun ? 'would delete' : 'deleted'} backup ${d.id}`, { backupId: d.id, reason: d.reason });
      }
      if (options.json) {
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      } else {
        const verb = (d: PruneDecision): string =>
          d.action === 'keep' ? 'keep        ' : held(d) ? 'locked      ' : dryRun ? 'would delete' : 'deleted     ';
        const lines = result.decisions.map(
          (d) =>
            `${verb(d)} ${d.id} ${d.kind.padEnd(8)} ${d.reason}${held(d) ? `; Object Lock retains it ${lockPhrase(d.lockedUntil)}` : ''}`,
        );
        const lockedNote = result.locked > 0 ? `, ${result.locked} held by Object Lock (deleted by a later prune)` : '';
        const walLockedNote = result.walLocked > 0 ? `, ${result.walLocked} held by Object Lock ${lockPhrase(result.walLockedUntil)}` : '';
        process.stdout.write(
          `${lines.join('\n')}${lines.length ? '\n' : ''}${dryRun ? 'dry run: nothing deleted; ' : ''}${result.deleted} to delete, ${result.kept} kept${lockedNote}${dryRun ? '' : `, ${formatBytes(result.bytesFreed)} freed`}; WAL: ${result.walDeleted} file(s) ${dryRun ? 'would be ' : ''}deleted${walLockedNote}${result.walKeptFrom ? `, kept from ${result.walKeptFrom}` : ' (no base backup: archive left alone)'}\n`,
        );
      }
      return {
        exitCode: 0,
        details: {
          dryRun,
          deleted: result.decisions.filter((d) => d.action === 'delete' && d.lockedUntil === undefined).map((d) => d.id),
          kept: result.kept,
          locked: result.decisions.filter((d) => d.lockedUntil !== undefined).map((d) => d.id),
          walDeleted: result.walDeleted,
          walLocked: result.walLocked,
        },
      };
    },
  );
}

/** "until <date>", or "under a legal hold" when no date ends it. */
function lockPhrase(until: string | null | undefined): string {
  return until ? `until ${until}` : 'under a legal hold';
}
