import type { BackupConfig } from '../../config/config.js';
import { type KeyDescription, describeKeyFile } from '../../crypto/keys.js';
import { type TrustPolicy, inspectSigning } from '../../crypto/signing.js';
import { type AuditVerification, readAuditLog, verifyAudit } from '../../repository/audit-log.js';
import { type BackupEntry, failedVerification, listBackupsWithVerifications } from '../../repository/backup-catalog.js';
import { listVerifications } from '../../repository/verification-record.js';
import { WAL_PREFIX, walFileOfKey } from '../../repository/wal-layout.js';
import type { Storage } from '../../storage/storage.js';
import { summarizeWalArchive } from '../../wal/wal-archive-summary.js';
import { parseWalFileName } from '../../wal/wal-file-name.js';
import { type ArchivedSegment, type BaseBackupSpan, type DailyCoverage, dailyCoverage } from './pitr-coverage.js';
import { type ReportMonth, inMonth } from './report-month.js';

/** The `--json` shape (docs/report.md): formatVersion changes when a field changes meaning. */
export interface ReportData {
  readonly formatVersion: 1;
  readonly month: string;
  readonly period: { readonly from: string; readonly to: string };
  readonly generatedAt: string;
  readonly repository: string;
  /** BACKUP_SIZE_DEVIATION: the band the size alert allows around the previous logical backup. */
  readonly sizeDeviation: number;
  readonly backups: readonly ReportBackup[];
  readonly verifications: readonly ReportVerification[];
  readonly restores: readonly ReportRestore[];
  readonly wal: ReportWal;
  readonly keys: ReportKeys;
  /** Objects that are not trusted or did not pass (whole repository, any month: they need action now). */
  readonly problems: readonly ReportProblem[];
  readonly audit: ReportAudit;
  readonly summary: ReportSummary;
}

export interface ReportBackup {
  readonly id: string;
  readonly kind: string;
  /** complete | failed (its newest verification failed) | incomplete | corrupt | untrusted. */
  readonly status: string;
  readonly createdAt: string;
  readonly bytes: number;
  readonly durationSeconds: number | null;
  readonly database: string | null;
  readonly tables: number | null;
  readonly signer: string | null;
  /** Logical backups: the previous complete logical backup's size, and the deviation from it (the size alert). */
  readonly previousBytes: number | null;
  readonly deviationRatio: number | null;
  readonly outsideBand: boolean;
  readonly verification: { readonly ok: boolean; readonly verifiedAt: string; readonly failed: readonly string[] } | null;
  readonly problem: string | null;
}

export interface ReportVerification {
  readonly backupId: string;
  readonly kind: string;
  readonly ok: boolean;
  readonly verifiedAt: string;
  /** The measured RTO of a test restore: restore into a throwaway server plus every check. */
  readonly durationSeconds: number;
  readonly checks: ReadonlyArray<{ readonly name: string; readonly ok: boolean; readonly detail: string }>;
}

export interface ReportRestore {
  readonly at: string;
  readonly operation: string;
  readonly backupId: string | null;
  readonly ok: boolean;
  readonly durationSeconds: number | null;
  readonly actor: string;
  readonly errorCode: string | null;
}

export interface ReportWal {
  readonly segments: number;
  readonly bytes: number;
  readonly newestSegment: string | null;
  readonly newestSegmentAt: string | null;
  readonly earliestRestorableTime: string | null;
  readonly latestRestorableTime: string | null;
  readonly gaps: ReadonlyArray<{ readonly from: string; readonly to: string }>;
  readonly days: readonly DailyCoverage[];
}

export interface ReportKey extends KeyDescription {
  /** encryption (BACKUP_GPG_PUBLIC_KEY_FILE), signing (BACKUP_SIGNING_KEY_FILE) or trusted-signer. */
  readonly role: 'encryption' | 'signing' | 'trusted-signer';
  readonly daysLeft: number | null;
}

export interface ReportKeys {
  readonly warnDays: number;
  readonly keys: readonly ReportKey[];
  readonly problems: readonly string[];
}

export interface ReportProblem {
  /** backup | verification-record | audit-record. */
  readonly kind: string;
  readonly object: string;
  readonly status: string;
  readonly detail: string;
}

export interface ReportAudit {
  readonly ok: boolean;
  readonly records: number;
  readonly signedRecords: number;
  readonly unsignedRecords: number;
  readonly head: { readonly seq: number; readonly hash: string; readonly at: string } | null;
  readonly firstBroken: AuditVerification['firstBroken'] | null;
  readonly problems: AuditVerification['problems'];
  /** Records of the month, by operation and outcome ("create success": 30). */
  readonly monthOperations: Readonly<Record<string, number>>;
}

export interface ReportSummary {
  readonly backups: number;
  readonly backupsComplete: number;
  readonly verifications: number;
  readonly verificationsFailed: number;
  readonly restores: number;
  readonly worstRpoSeconds: number | null;
  readonly longestVerificationSeconds: number | null;
  readonly problems: number;
  readonly auditOk: boolean;
}

const RESTORE_OPERATIONS = new Set(['restore', 'restore-pitr']);
const DAY_MS = 86_400_000;

/** Gathers the month's evidence, read-only, from trusted objects (untrusted ones are listed as problems). */
export async function gatherReport(
  config: BackupConfig,
  storage: Storage,
  trust: TrustPolicy,
  month: ReportMonth,
  now = new Date(),
): Promise<ReportData> {
  const problems: ReportProblem[] = [];
  const entries = await listBackupsWithVerifications(storage, trust);
  const kindOf = new Map(entries.map((e) => [e.id, e.kind]));

  const backups = describeBackups(entries, config.operations.sizeDeviation).filter((b) => inMonth(month, b.createdAt));
  for (const entry of entries) {
    if (entry.status !== 'complete' || failedVerification(entry))
      problems.push({
        kind: 'backup',
        object: entry.id,
        status: failedVerification(entry) ? 'failed' : entry.status,
        detail: entry.problem ?? (failedVerification(entry) ? `verification failed: ${entry.verification?.failed.join(', ')}` : ''),
      });
  }

  const verifications = (
    await listVerifications(storage, trust, {
      trustedOnly: true,
      onUntrusted: (key, reason) => problems.push({ kind: 'verification-record', object: key, status: 'untrusted', detail: reason }),
    })
  )
    .filter((v) => inMonth(month, v.verifiedAt))
    .map((v) => ({
      backupId: v.id,
      kind: kindOf.get(v.id) ?? 'unknown',
      ok: v.ok,
      verifiedAt: v.verifiedAt,
      durationSeconds: v.durationSeconds,
      checks: v.checks,
    }))
    .sort((a, b) => a.verifiedAt.localeCompare(b.verifiedAt));

  const records = await readAuditLog(storage, trust);
  const restores: ReportRestore[] = [];
  const monthOperations: Record<string, number> = {};
  for (const record of records) {
    if (record.signer === null) {
      problems.push({
        kind: 'audit-record',
        object: `audit record ${record.seq}`,
        status: 'untrusted',
        detail: record.problem ?? 'not signed',
      });
      continue;
    }
    if (!inMonth(month, record.at)) continue;
    const label = `${record.operation} ${record.outcome}`;
    monthOperations[label] = (monthOperations[label] ?? 0) + 1;
    if (!RESTORE_OPERATIONS.has(record.operation)) continue;
    const duration = record.details['durationSeconds'];
    const errorCode = record.details['errorCode'];
    restores.push({
      at: record.at,
      operation: record.operation,
      backupId: record.backupId,
      ok: record.outcome === 'success',
      durationSeconds: typeof duration === 'number' ? duration : null,
      actor: `${record.actor.user}@${record.actor.host}${record.actor.pod ? ` (pod ${record.actor.pod})` : ''}`,
      errorCode: typeof errorCode === 'string' ? errorCode : null,
    });
  }
  const chain = await verifyAudit(storage, trust);

  const wal = await describeWal(storage, trust, entries, month, now);
  const keys = await describeKeys(config, now);

  const periodEnd = new Date(Math.min(month.end.getTime(), now.getTime()));
  const measured = wal.days.filter((d) => d.measured && d.worstRpoSeconds !== null).map((d) => d.worstRpoSeconds!);
  const longest = verifications.map((v) => v.durationSeconds);
  return {
    formatVersion: 1,
    month: month.name,
    period: { from: month.start.toISOString(), to: periodEnd.toISOString() },
    generatedAt: now.toISOString(),
    repository: storage.location,
    sizeDeviation: config.operations.sizeDeviation,
    backups,
    verifications,
    restores,
    wal,
    keys,
    problems,
    audit: {
      ok: chain.ok,
      records: chain.records,
      signedRecords: chain.signedRecords,
      unsignedRecords: chain.unsignedRecords,
      head: chain.head,
      firstBroken: chain.firstBroken ?? null,
      problems: chain.problems,
      monthOperations,
    },
    summary: {
      backups: backups.length,
      backupsComplete: backups.filter((b) => b.status === 'complete').length,
      verifications: verifications.length,
      verificationsFailed: verifications.filter((v) => !v.ok).length,
      restores: restores.length,
      worstRpoSeconds: measured.length ? Math.max(...measured) : null,
      longestVerificationSeconds: longest.length ? Math.max(...longest) : null,
      problems: problems.length,
      auditOk: chain.ok,
    },
  };
}

/** Every backup, oldest first, each logical one against the previous complete one as monitor's size check does. */
function describeBackups(entries: readonly BackupEntry[], deviation: number): ReportBackup[] {
  let previousLogical: number | undefined;
  return [...entries].reverse().map((entry) => {
    const logical = entry.kind === 'logical' && entry.status === 'complete';
    const previousBytes = logical ? previousLogical : undefined;
    const ratio = previousBytes === undefined ? null : previousBytes === 0 ? 0 : (entry.bytes - previousBytes) / previousBytes;
    if (logical) previousLogical = entry.bytes;
    const v = entry.verification;
    return {
      id: entry.id,
      kind: entry.kind,
      status: failedVerification(entry) ? 'failed' : entry.status,
      createdAt: entry.createdAt,
      bytes: entry.bytes,
      durationSeconds: entry.durationSeconds ?? null,
      database: entry.database ?? null,
      tables: entry.tables ?? null,
      signer: entry.signer ?? null,
      previousBytes: previousBytes ?? null,
      deviationRatio: ratio,
      outsideBand: ratio !== null && Math.abs(ratio) > deviation,
      verification: v ? { ok: v.ok, verifiedAt: v.verifiedAt, failed: v.failed } : null,
      problem: entry.problem ?? null,
    };
  });
}

async function describeWal(
  storage: Storage,
  trust: TrustPolicy,
  entries: readonly BackupEntry[],
  month: ReportMonth,
  now: Date,
): Promise<ReportWal> {
  const segments: ArchivedSegment[] = [];
  for await (const object of storage.list(WAL_PREFIX)) {
    const file = walFileOfKey(object.key);
    if (file?.kind === 'segment') segments.push({ segment: file.segment, bytes: object.bytes, at: object.modifiedAt });
  }
  const numberOf = (name: string): number => (parseWalFileName(name) as { segment: number }).segment;
  const bases: BaseBackupSpan[] = entries.flatMap((e) =>
    e.status === 'complete' && e.manifest?.kind === 'base'
      ? [
          {
            startSegment: numberOf(e.manifest.startWalSegment),
            stopSegment: numberOf(e.manifest.stopWalSegment),
            finishedAt: new Date(e.manifest.finishedAt),
          },
        ]
      : [],
  );
  const summary = await summarizeWalArchive(storage, trust, now);
  return {
    segments: summary.segments,
    bytes: summary.bytes,
    newestSegment: summary.newestSegment ?? null,
    newestSegmentAt: summary.newestSegmentAt?.toISOString() ?? null,
    earliestRestorableTime: summary.earliestRestorableTime?.toISOString() ?? null,
    latestRestorableTime: summary.latestRestorableTime?.toISOString() ?? null,
    gaps: summary.gaps,
    days: dailyCoverage(month.start, month.days, segments, bases, now),
  };
}

/** Public and signing-side keys only: the report never reads a decryption key. */
async function describeKeys(config: BackupConfig, now: Date): Promise<ReportKeys> {
  const keys: ReportKey[] = [];
  const problems: string[] = [];
  const add = (role: ReportKey['role'], k: KeyDescription): void => {
    keys.push({ ...k, role, daysLeft: k.expiresAt === null ? null : Math.floor((Date.parse(k.expiresAt) - now.getTime()) / DAY_MS) });
  };
  if (config.keys.publicKeyFile === undefined) problems.push('BACKUP_GPG_PUBLIC_KEY_FILE is not set: the encryption keys are not shown');
  else {
    try {
      for (const k of await describeKeyFile(config.keys.publicKeyFile, 'public', now)) add('encryption', k);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  const signing = await inspectSigning(config.keys, config.operations.keyExpiryWarnDays, now);
  if (signing.signing) add('signing', signing.signing);
  for (const k of signing.trusted) add('trusted-signer', k);
  problems.push(...signing.problems);
  const warnBefore = now.getTime() + config.operations.keyExpiryWarnDays * DAY_MS;
  for (const k of keys)
    if (k.role === 'encryption' && k.expiresAt !== null && Date.parse(k.expiresAt) <= warnBefore)
      problems.push(
        `encryption key ${k.fingerprint} ${k.expired ? 'expired' : 'expires'} on ${k.expiresAt.slice(0, 10)}: rotate it (docs/key-rotation.md)`,
      );
  return { warnDays: config.operations.keyExpiryWarnDays, keys, problems };
}
