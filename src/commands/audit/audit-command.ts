import { readAuditLog, verifyAudit } from '../../repository/audit-log.js';
import { runBackupCommand } from '../../cli/backup-command.js';

export async function runAuditList(options: { json?: boolean }): Promise<number> {
  return runBackupCommand({ name: 'audit', logStream: 'backup', needs: { repository: true } }, async ({ storage }) => {
    const records = await readAuditLog(storage());
    if (options.json) process.stdout.write(`${JSON.stringify(records, null, 2)}\n`);
    else
      process.stdout.write(
        `${records.map((r) => `${String(r.seq).padStart(6)} ${r.at} ${r.outcome.padEnd(7)} ${r.operation.padEnd(13)} ${(r.backupId ?? '-').padEnd(22)} ${r.actor.user}@${r.actor.host}${r.actor.pod ? ` (pod ${r.actor.pod})` : ''}`).join('\n')}${records.length ? '\n' : 'no audit records\n'}`,
      );
    return { exitCode: 0, audit: false };
  });
}

export async function runAuditVerify(options: { json?: boolean }): Promise<number> {
  return runBackupCommand({ name: 'audit-verify', logStream: 'backup', needs: { repository: true } }, async ({ storage }) => {
    const result = await verifyAudit(storage());
    if (options.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else if (result.ok) process.stdout.write(`audit log intact: ${result.records} records, hash chain verified\n`);
    else
      process.stdout.write(
        `AUDIT LOG BROKEN at record ${result.firstBroken?.seq} (${result.firstBroken?.key}): ${result.firstBroken?.reason}\n`,
      );
    return {
      exitCode: result.ok ? 0 : 4,
      audit: false,
      details: { ok: result.ok, records: result.records, firstBroken: result.firstBroken ?? null },
    };
  });
}
