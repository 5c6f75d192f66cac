import type { TrustPolicy } from '../../crypto/signing.js';
import { type AuditAnchor, type AuditVerification, readAuditLog, verifyAudit } from '../../repository/audit-log.js';
import type { Storage } from '../../storage/storage.js';
import { type CommandReport, runBackupCommand } from '../../cli/backup-command.js';
import { parseAuditAnchor } from './audit-anchor.js';

type Write = (text: string) => void;
const stdout: Write = (text) => process.stdout.write(text);

/** `pms-backup audit`: every record, oldest first, each marked with its signer or UNTRUSTED. */
export async function listAuditRecords(
  storage: Storage,
  trust: TrustPolicy,
  options: { json?: boolean },
  write = stdout,
): Promise<CommandReport> {
  const records = await readAuditLog(storage, trust);
  if (options.json) write(`${JSON.stringify(records, null, 2)}\n`);
  else
    write(
      `${records
        .map(
          (r) =>
            `${String(r.seq).padStart(6)} ${r.at} ${r.outcome.padEnd(7)} ${r.operation.padEnd(13)} ${(r.backupId ?? '-').padEnd(22)} ${r.actor.user}@${r.actor.host}${r.actor.pod ? ` (pod ${r.actor.pod})` : ''}${r.problem ? `  UNTRUSTED: ${r.problem}` : ''}`,
        )
        .join('\n')}${records.length ? '\n' : 'no audit records\n'}`,
    );
  return { exitCode: 0, audit: false };
}

function describeVerification(result: AuditVerification): string {
  if (result.ok) {
    const legacy = result.unsignedRecords > 0 ? ` (${result.unsignedRecords} written before signing, pinned by the first signed one)` : '';
    const head = result.head ? `; head ${result.head.seq}:${result.head.hash.slice(0, 12)} (${result.head.at})` : '';
    const anchor = result.anchor ? `; matches the anchor ${result.anchor.seq}:${result.anchor.hash}` : '';
    return `audit log intact: ${result.records} records, hash chain verified, signatures verified${legacy}${head}${anchor}\n`;
  }
  const more = result.problems.slice(1).map((p) => `  also record ${p.seq} (${p.key}): ${p.reason}\n`);
  return `AUDIT LOG BROKEN at record ${result.firstBroken?.seq} (${result.firstBroken?.key}): ${result.firstBroken?.reason}\n${more.join('')}`;
}

/** `pms-backup audit verify [--anchor SEQ:HASH]`: exit 4 naming the first broken record. */
export async function verifyAuditRecords(
  storage: Storage,
  trust: TrustPolicy,
  options: { json?: boolean; anchor?: AuditAnchor },
  write = stdout,
): Promise<CommandReport> {
  const result = await verifyAudit(storage, trust, options.anchor);
  write(options.json ? `${JSON.stringify(result, null, 2)}\n` : describeVerification(result));
  return {
    exitCode: result.ok ? 0 : 4,
    audit: false,
    details: {
      ok: result.ok,
      records: result.records,
      firstBroken: result.firstBroken ?? null,
      headSequence: result.head?.seq ?? 0,
      ...(result.anchor ? { anchor: result.anchor } : {}),
    },
  };
}

export async function runAuditList(options: { json?: boolean }): Promise<number> {
  return runBackupCommand({ name: 'audit', logStream: 'backup', needs: { repository: true, trust: true } }, async ({ storage, trust }) =>
    listAuditRecords(storage(), await trust(), options),
  );
}

export async function runAuditVerify(options: { json?: boolean; anchor?: string; allowUnsigned?: boolean }): Promise<number> {
  // A malformed anchor is a usage error before anything is read.
  const anchor = options.anchor === undefined ? undefined : parseAuditAnchor(options.anchor);
  return runBackupCommand(
    { name: 'audit-verify', logStream: 'backup', needs: { repository: true, trust: true } },
    async ({ storage, trust }) =>
      verifyAuditRecords(storage(), await trust(options.allowUnsigned ? { allowUnsigned: true } : {}), {
        ...(options.json ? { json: true } : {}),
        ...(anchor ? { anchor } : {}),
      }),
  );
}
