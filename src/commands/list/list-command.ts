import { type BackupEntry, failedVerification, listBackupsWithVerifications } from '../../repository/backup-catalog.js';
import { summarizeWalArchive } from '../../wal/wal-archive-summary.js';
import { runBackupCommand } from '../../cli/backup-command.js';
import { formatBytes } from '../../cli/progress.js';

export async function runList(options: { json?: boolean }): Promise<number> {
  return runBackupCommand({ name: 'list', logStream: 'backup', needs: { repository: true, trust: true } }, async ({ storage, trust }) => {
    const repository = storage();
    const trustPolicy = await trust();
    const now = Date.now();
    const entries = await listBackupsWithVerifications(repository, trustPolicy);
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
      const rows = entries.map(({ manifest: _manifest, ...entry }) => ({ ...entry, status: shownStatus(entry) }));
      process.stdout.write(`${JSON.stringify(walRow ? [...rows, walRow] : rows, null, 2)}\n`);
    } else if (entries.length === 0 && !walRow) {
      process.stdout.write(`no backups in ${repository.location}\n`);
    } else {
      const lines = entries.map((e) =>
        [
          e.id.padEnd(22),
          e.kind.padEnd(8),
          shownStatus(e).padEnd(10),
          e.createdAt.padEnd(25),
          `${formatAge(now - Date.parse(e.createdAt))} ago`.padStart(9),
          formatBytes(e.bytes).padStart(10),
          verifiedText(e, now).padEnd(18),
          e.problem ?? (failedVerification(e) ? `failed: ${e.verification?.failed.join(', ')}` : ''),
        ]
          .join(' ')
          .trimEnd(),
      );
      process.stdout.write(
        `${['ID'.padEnd(22), 'KIND'.padEnd(8), 'STATUS'.padEnd(10), 'CREATED'.padEnd(25), 'AGE'.padStart(9), 'SIZE'.padStart(10), 'VERIFIED'.padEnd(18)].join(' ').trimEnd()}\n${lines.join('\n')}\n`,
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

/** `failed` for a complete backup whose newest trusted verification failed; its catalogue status otherwise. */
function shownStatus(entry: BackupEntry): string {
  return failedVerification(entry) ? 'failed' : entry.status;
}

function verifiedText(entry: BackupEntry, now: number): string {
  const v = entry.verification;
  if (!v) return entry.status === 'complete' ? 'never' : '-';
  return `${v.ok ? 'ok' : 'FAILED'} ${formatAge(now - Date.parse(v.verifiedAt))} ago`;
}

function formatAge(ms: number): string {
  const minutes = Math.max(0, Math.floor(ms / 60_000));
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  return `${Math.floor(hours / 24)}d`;
}
