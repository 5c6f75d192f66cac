import { usingRepositoryLock } from '../../repository/repository-lock.js';
import { pruneBackups } from './prune-backups.js';
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
      for (const d of result.decisions.filter((x) => x.action === 'delete'))
        logger.info(`${dryRun ? 'would delete' : 'deleted'} backup ${d.id}`, { backupId: d.id, reason: d.reason });
      if (options.json) {
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      } else {
        const lines = result.decisions.map(
          (d) =>
            `${d.action === 'delete' ? (dryRun ? 'would delete' : 'deleted     ') : 'keep        '} ${d.id} ${d.kind.padEnd(8)} ${d.reason}`,
        );
        process.stdout.write(
          `${lines.join('\n')}${lines.length ? '\n' : ''}${dryRun ? 'dry run: nothing deleted; ' : ''}${result.deleted} to delete, ${result.kept} kept${dryRun ? '' : `, ${formatBytes(result.bytesFreed)} freed`}; WAL: ${result.walDeleted} file(s) ${dryRun ? 'would be ' : ''}deleted${result.walKeptFrom ? `, kept from ${result.walKeptFrom}` : ' (no base backup: archive left alone)'}\n`,
        );
      }
      return {
        exitCode: 0,
        details: {
          dryRun,
          deleted: result.decisions.filter((d) => d.action === 'delete').map((d) => d.id),
          kept: result.kept,
          walDeleted: result.walDeleted,
        },
      };
    },
  );
}
