import { listBackups } from '../../repository/backup-catalog.js';
import { summarizeWalArchive } from '../../wal/wal-archive-summary.js';
import { runBackupCommand } from '../../cli/backup-command.js';
import { formatBytes } from '../../cli/progress.js';

export async function runList(options: { json?: boolean }): Promise<number> {
  return runBackupCommand({ name: 'list', logStream: 'backup', needs: { repository: true, trust: true } }, async ({ storage, trust }) => {
    const repository = storage();
    const trustPolicy = await trust();
    const entries = await listBackups(repository, trustPolicy);
    const wal = await summarizeWalArchive(repository, trustPolicy);
    // The WAL archive is one more row (kind "wal-archive") so --json stays one array.
    const walRow =
      wal.segments > 0
        ? {
            id: 'wal',
            kind: 'wal-archive',
            createdAt: (wal.earliestRestorableTime ?? wal.newestSegmentAt ?? new Date()).toISOString(),
            bytes: wal.bytes,
            status: wal.gaps.length > 0 ? 'gaps' : wal.earliestRestorableTime ? 'complete' : 'no-base-backup',
            segments: wal.segments,
            newestSegment: wal.newestSegment ?? null,
            earliestRestorableTime: wal.earliestRestorableTime?.toISOString() ?? null,
            latestRestorableTime: wal.latestRestorableTime?.toISOString() ?? null,
            gaps: wal.gaps,
          }
        : undefined;
    if (options.json) {
      const rows = entries.map(({ manifest: _manifest, ...entry }) => entry);
      process.stdout.write(`${JSON.stringify(walRow ? [...rows, walRow] : rows, null, 2)}\n`);
    } else if (entries.length === 0 && !walRow) {
      process.stdout.write(`no backups in ${repository.location}\n`);
    } else {
      const lines = entries.map((e) =>
        [e.id.padEnd(22), e.kind.padEnd(8), e.status.padEnd(10), e.createdAt.padEnd(25), formatBytes(e.bytes).padStart(10), e.problem ?? '']
          .join(' ')
          .trimEnd(),
      );
      process.stdout.write(
        `${['ID'.padEnd(22), 'KIND'.padEnd(8), 'STATUS'.padEnd(10), 'CREATED'.padEnd(25), 'SIZE'.padStart(10)].join(' ')}\n${lines.join('\n')}\n`,
      );
      if (walRow) {
        process.stdout.write(
          `WAL archive: ${walRow.segments} segments (${formatBytes(walRow.bytes)}), newest ${walRow.newestSegment}; point-in-time recovery possible from ${walRow.earliestRestorableTime ?? '(no complete base backup yet)'} to ${walRow.latestRestorableTime ?? '-'}${wal.gaps.length ? `; GAPS: ${wal.gaps.map((g) => `${g.from}..${g.to}`).join(', ')}` : ''}\n`,
        );
      }
    }
    return { exitCode: 0, audit: false };
  });
}
