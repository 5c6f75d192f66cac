import { listBackups } from '../../catalog/backup-catalog.js';
import { loadBackupConfig, requireRepository } from '../../config/config.js';
import { openStorage } from '../../storage/open-storage.js';
import { formatBytes } from '../progress.js';

export async function runList(options: { json?: boolean }): Promise<number> {
  const config = loadBackupConfig(process.env, { repository: true });
  const storage = openStorage(requireRepository(config));
  try {
    const entries = await listBackups(storage);
    if (options.json) {
      const rows = entries.map(({ manifest: _manifest, ...entry }) => entry);
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      return 0;
    }
    if (entries.length === 0) {
      process.stdout.write(`no backups in ${storage.location}\n`);
      return 0;
    }
    const lines = entries.map((e) =>
      [e.id.padEnd(22), e.kind.padEnd(8), e.status.padEnd(10), e.createdAt.padEnd(25), formatBytes(e.bytes).padStart(10), e.problem ?? ''].join(' ').trimEnd(),
    );
    process.stdout.write(`${['ID'.padEnd(22), 'KIND'.padEnd(8), 'STATUS'.padEnd(10), 'CREATED'.padEnd(25), 'SIZE'.padStart(10)].join(' ')}\n${lines.join('\n')}\n`);
    return 0;
  } finally {
    await storage.close();
  }
}
