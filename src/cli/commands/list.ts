import { listBackups } from '../../catalog/backup-catalog.js';
import { runBackupCommand } from '../backup-command.js';
import { formatBytes } from '../progress.js';

export async function runList(options: { json?: boolean }): Promise<number> {
  return runBackupCommand({ name: 'list', logStream: 'backup', needs: { repository: true } }, async ({ storage }) => {
    const repository = storage();
    const entries = await listBackups(repository);
    if (options.json) {
      const rows = entries.map(({ manifest: _manifest, ...entry }) => entry);
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    } else if (entries.length === 0) {
      process.stdout.write(`no backups in ${repository.location}\n`);
    } else {
      const lines = entries.map((e) =>
        [e.id.padEnd(22), e.kind.padEnd(8), e.status.padEnd(10), e.createdAt.padEnd(25), formatBytes(e.bytes).padStart(10), e.problem ?? ''].join(' ').trimEnd(),
      );
      process.stdout.write(`${['ID'.padEnd(22), 'KIND'.padEnd(8), 'STATUS'.padEnd(10), 'CREATED'.padEnd(25), 'SIZE'.padStart(10)].join(' ')}\n${lines.join('\n')}\n`);
    }
    return { exitCode: 0, audit: false };
  });
}
