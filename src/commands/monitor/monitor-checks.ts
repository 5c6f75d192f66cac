import { describeLeftover, findThrowawayDirectories } from '../restore/cleanup/leftovers.js';
import { type SigningReport, type TrustPolicy, inspectSigning } from '../../crypto/signing.js';
import type { AuditHeadFacts } from '../../metrics/command-outcome.js';
import { auditHealth } from '../audit/audit-health.js';
import { type BackupEntry, listBackups } from '../../repository/backup-catalog.js';
import type { BackupConfig } from '../../config/config.js';
import { type KeyDescription, describeKey, readPublicKeyFile } from '../../crypto/keys.js';
import type { Storage } from '../../storage/storage.js';
import { listVerifications } from '../../repository/verification-record.js';
import { measureDrLag } from '../copy/copy-to-dr.js';
import { summarizeWalArchive } from '../../wal/wal-archive-summary.js';
import { surveyWalTrust } from '../../repository/wal-object-signature.js';
import { checkContinuity } from '../../wal/timeline-continuity.js';
import { walFileOfKey } from '../../repository/wal-layout.js';
import type { BaseManifest } from '../../repository/manifest.js';
import { type ClusterFacts, clusterChecks, readClusterFacts } from '../../postgres/patroni/cluster-health.js';

export interface MonitorCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface MonitorSigningKey {
  readonly fingerprint: string;
  /** signing: this job signs with it; wal: it sealed the newest WAL (the server's key in use); trusted: any other listed signer. */
  readonly role: 'signing' | 'wal' | 'trusted';
  readonly expiresAt: string | null;
}

export interface MonitorReport {
  readonly ok: boolean;
  readonly checkedAt: string;
  readonly repository: string;
  readonly checks: MonitorCheck[];
  readonly facts: {
    readonly newestBackupId?: string;
    readonly backupAgeSeconds?: number;
    readonly backupSizeBytes?: number;
    readonly sizeDeviationRatio?: number;
    readonly repositoryUp: boolean;
    readonly keys: readonly KeyDescription[];
    readonly signingKeys: readonly MonitorSigningKey[];
    readonly verification?: { ok: boolean; durationSeconds: number; verifiedAt: string; id: string };
    readonly drLagSeconds?: number;
    readonly walLastArchivedAt?: string;
    readonly walGapSegments?: number;
    readonly untrustedBackups?: number;
    /** WAL objects whose sealed signature is missing (after sealing began), bad or foreign. */
    readonly untrustedWal?: number;
    readonly audit?: AuditHeadFacts;
    /** The HA cluster (BACKUP_PATRONI_URLS set); undefined when no member answered. */
    readonly cluster?: ClusterFacts;
    readonly maxReplicationLagSeconds?: number;
  };
}

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;

/** The seed's alert conditions, evaluated against the repository and the configured keys. */
export async function runMonitorChecks(
  config: BackupConfig,
  storage: Storage,
  trust: TrustPolicy,
  now = new Date(),
  dr?: { storage: Storage; maxLagHours: number },
): Promise<MonitorReport> {
  const ops = config.operations;
  const checks: MonitorCheck[] = [];
  let repositoryUp = true;
  let entries: BackupEntry[] = [];
  try {
    await storage.probe();
    entries = await listBackups(storage, trust);
    checks.push({ name: 'repository', ok: true, detail: `${storage.location} is reachable and writable` });
  } catch (error) {
    repositoryUp = false;
    checks.push({ name: 'repository', ok: false, detail: `${storage.location} is unreachable: ${(error as Error).message}` });
  }

  // A planted or altered manifest is never the newest backup (it is not complete), and it is an
  // alarm of its own: someone who can write to the repository tried to forge a backup.
  const untrusted = entries.filter((e) => e.status === 'untrusted');
  if (repositoryUp) {
    checks.push(
      untrusted.length === 0
        ? { name: 'trust', ok: true, detail: 'every manifest is signed by a trusted key' }
        : {
            name: 'trust',
            ok: false,
            detail: `${untrusted.length} backup(s) not signed by a trusted key: ${untrusted
              .slice(0, 5)
              .map((e) => `${e.id} (${e.problem ?? 'untrusted'})`)
              .join('; ')}; treat as a security incident (docs/runbook.md#pmsbackupuntrustedobject)`,
          },
    );
  }
  const complete = entries.filter((e) => e.status === 'complete');
  const newest = complete[0];
  let backupAgeSeconds: number | undefined;
  if (!repositoryUp) {
    checks.push({ name: 'backup-age', ok: false, detail: 'unknown: the repository is unreachable' });
  } else if (!newest) {
    checks.push({ name: 'backup-age', ok: false, detail: `no complete backup in ${storage.location}` });
  } else {
    backupAgeSeconds = Math.max(0, (now.getTime() - Date.parse(newest.createdAt)) / 1000);
    const hours = backupAgeSeconds / 3600;
    checks.push({
      name: 'backup-age',
      ok: hours <= ops.maxAgeHours,
      detail: `newest complete backup ${newest.id} (${newest.kind}) is ${hours.toFixed(1)} h old; limit ${ops.maxAgeHours} h (BACKUP_MAX_AGE_HOURS)`,
    });
  }

  const logical = complete.filter((e) => e.kind === 'logical');
  let sizeDeviationRatio: number | undefined;
  if (logical.length >= 2) {
    const [latest, previous] = [logical[0]!, logical[1]!];
    sizeDeviationRatio = previous.bytes === 0 ? 0 : (latest.bytes - previous.bytes) / previous.bytes;
    checks.push({
      name: 'size-deviation',
      ok: Math.abs(sizeDeviationRatio) <= ops.sizeDeviation,
      detail: `${latest.id} is ${latest.bytes} bytes, previous ${previous.id} ${previous.bytes} bytes: ${(sizeDeviationRatio * 100).toFixed(1)} %; limit ±${(ops.sizeDeviation * 100).toFixed(0)} % (BACKUP_SIZE_DEVIATION)`,
    });
  } else {
    checks.push({
      name: 'size-deviation',
      ok: repositoryUp,
      detail: repositoryUp
        ? `${logical.length} complete logical backup(s): nothing to compare yet`
        : 'unknown: the repository is unreachable',
    });
  }

  const keys: KeyDescription[] = [];
  const signingKeys: MonitorSigningKey[] = [];
  if (config.keys.publicKeyFile === undefined) {
    checks.push({ name: 'key-expiry', ok: false, detail: 'BACKUP_GPG_PUBLIC_KEY_FILE is not set: cannot check the recipient keys' });
  } else {
    try {
      for (const key of await readPublicKeyFile(config.keys.publicKeyFile)) keys.push(await describeKey(key, now));
      const warnBefore = now.getTime() + ops.keyExpiryWarnDays * DAY;
      const expiring = keys.filter((k) => k.expiresAt !== null && Date.parse(k.expiresAt) <= warnBefore);
      checks.push({
        name: 'key-expiry',
        ok: expiring.length === 0,
        detail:
          expiring.length === 0
            ? `${keys.length} recipient key(s); none expires within ${ops.keyExpiryWarnDays} days`
            : expiring.map((k) => `${k.fingerprint} ${k.expired ? 'EXPIRED on' : 'expires on'} ${k.expiresAt}`).join('; ') +
              ' — rotate the key (docs/key-rotation.md)',
      });
    } catch (error) {
      checks.push({ name: 'key-expiry', ok: false, detail: (error as Error).message });
    }
  }

  let verification: MonitorReport['facts']['verification'];
  let drLagSeconds: number | undefined;
  if (repositoryUp) {
    const newestVerification = (await listVerifications(storage, trust))[0];
    if (!newestVerification) {
      checks.push({ name: 'verification', ok: false, detail: 'no backup has ever been verified: run pms-backup verify latest' });
    } else {
      verification = {
        ok: newestVerification.ok,
        durationSeconds: newestVerification.durationSeconds,
        verifiedAt: newestVerification.verifiedAt,
        id: newestVerification.id,
      };
      const ageDays = (now.getTime() - Date.parse(newestVerification.verifiedAt)) / DAY;
      const failed = newestVerification.checks.filter((c) => !c.ok).map((c) => c.name);
      checks.push({
        name: 'verification',
        ok: newestVerification.ok && ageDays <= ops.verifyMaxAgeDays,
        detail: newestVerification.ok
          ? `newest verification (${newestVerification.id}) passed ${ageDays.toFixed(1)} days ago; limit ${ops.verifyMaxAgeDays} days`
          : `newest verification (${newestVerification.id}, ${newestVerification.verifiedAt}) FAILED: ${failed.join(', ')}`,
      });
    }
  } else {
    checks.push({ name: 'verification', ok: false, detail: 'unknown: the repository is unreachable' });
  }

  // WAL archive checks apply once continuous archiving is in use (any segment or base backup).
  let walLastArchivedAt: Date | undefined;
  let walGapSegments: number | undefined;
  let untrustedWal: number | undefined;
  let walSigner: string | undefined;
  if (repositoryUp) {
    // Without the decryption key only the sealed signature tells our WAL from a planted object.
    const walTrust = await surveyWalTrust(storage, trust.trusted);
    const wal = await summarizeWalArchive(storage, trust, now, walTrust);
    walSigner = [...walTrust.trusted.values()].sort((a, b) => b.facts.signedAt.localeCompare(a.facts.signedAt))[0]?.facts.signer;
    const hasBase = complete.some((e) => e.kind === 'base');
    const walObjects = walTrust.trusted.size + walTrust.legacy.size + walTrust.untrusted.size;
    if (wal.segments > 0 || hasBase || walObjects > 0) {
      untrustedWal = walTrust.untrusted.size;
      const legacy =
        walTrust.legacy.size > 0
          ? `; ${walTrust.legacy.size} WAL file(s) archived before wal-push sealed WAL carry no sealed signature: kept for the chain, never counted as fresh (only wal-fetch, with the key, can prove them)`
          : '';
      checks.push(
        walTrust.untrusted.size === 0
          ? { name: 'wal-trust', ok: true, detail: `${walTrust.trusted.size} WAL file(s) sealed by a trusted key${legacy}` }
          : {
              name: 'wal-trust',
              ok: false,
              detail: `${walTrust.untrusted.size} WAL file(s) not sealed by a trusted key: ${[...walTrust.untrusted.values()]
                .slice(0, 5)
                .map((u) => u.reason)
                .join(
                  '; ',
                )}; they are ignored here and never copied to DR; treat as a security incident (docs/runbook.md#pmsbackupuntrustedwal)${legacy}`,
            },
      );
      walLastArchivedAt = wal.newestSegmentAt;
      const ageMinutes = wal.newestSegmentAt ? (now.getTime() - wal.newestSegmentAt.getTime()) / 60000 : Number.POSITIVE_INFINITY;
      checks.push({
        name: 'wal-age',
        ok: ageMinutes <= ops.walMaxAgeMinutes,
        detail: wal.newestSegment
          ? `newest WAL segment sealed by a trusted key, ${wal.newestSegment}, is ${ageMinutes.toFixed(1)} min old; limit ${ops.walMaxAgeMinutes} min (BACKUP_WAL_MAX_AGE_MINUTES)`
          : walObjects > 0
            ? 'no WAL segment sealed by a trusted key: check that wal-push runs this version with the WAL signing key'
            : 'no WAL segment archived yet: check archive_mode and archive_command',
      });
      const gaps = walChainCheck(complete, [...walTrust.trusted.keys(), ...walTrust.legacy.keys()], wal.newestSegment);
      walGapSegments = gaps.missing;
      checks.push(gaps.check);
    }
  }

  signingKeyChecks(
    config,
    await inspectSigning(
      {
        signingKeyFile: config.keys.signingKeyFile,
        signingPassphraseFile: config.keys.signingPassphraseFile,
        trustedSignersFile: config.keys.trustedSignersFile,
        walSignerFingerprints: config.keys.walSignerFingerprints,
      },
      // Expiry is judged below, per role: a retired signer may have expired, an active one not.
      Number.NEGATIVE_INFINITY,
      now,
    ),
    walSigner,
    now,
    checks,
    signingKeys,
  );

  // The whole audit log, verified each run; its head goes to Prometheus, the anchor outside the repository.
  let audit: AuditHeadFacts | undefined;
  if (repositoryUp) {
    try {
      const health = await auditHealth(storage, trust);
      checks.push(health.check);
      audit = health.facts;
    } catch (error) {
      checks.push({ name: 'audit', ok: false, detail: `cannot read the audit log: ${(error as Error).message}` });
    }
  }

  // Only the directories: monitor's pod has no route to the database (doctor and
  // restore --cleanup also find staging databases). Reported, never failing the run: a
  // leftover is hygiene (and possibly patient data on disk), not a backup that is missing.
  const leftovers = findThrowawayDirectories(undefined, now).filter((l) => l.orphaned);
  checks.push({
    name: 'leftovers',
    ok: true,
    detail:
      leftovers.length === 0
        ? 'no throwaway server directory left behind here'
        : `warning: ${leftovers.map(describeLeftover).join('; ')}: pms-backup restore --cleanup removes them`,
  });

  if (dr) {
    try {
      const lag = await measureDrLag(storage, dr.storage, trust, now);
      const hours = lag.lagSeconds / 3600;
      checks.push({
        name: 'dr-copy',
        ok: hours <= dr.maxLagHours,
        detail:
          lag.missing.length === 0
            ? `${dr.storage.location} holds every complete backup`
            : `${lag.missing.length} backup(s) not yet in ${dr.storage.location}; oldest missing for ${hours.toFixed(1)} h; limit ${dr.maxLagHours} h (BACKUP_DR_MAX_LAG_HOURS): run pms-backup copy`,
      });
      drLagSeconds = lag.lagSeconds;
    } catch (error) {
      checks.push({ name: 'dr-copy', ok: false, detail: `cannot compare with ${dr.storage.location}: ${(error as Error).message}` });
    }
  }

  let cluster: ClusterFacts | undefined;
  if (ops.patroniUrls.length > 0) {
    try {
      cluster = await readClusterFacts(ops.patroniUrls, { now });
      checks.push(...clusterChecks(cluster, ops.maxReplicationLagSeconds));
    } catch (error) {
      checks.push({ name: 'ha cluster', ok: false, detail: (error as Error).message });
    }
  }

  return {
    ok: checks.every((c) => c.ok),
    checkedAt: now.toISOString(),
    repository: storage.location,
    checks,
    facts: {
      ...(newest ? { newestBackupId: newest.id, backupSizeBytes: newest.bytes } : {}),
      ...(backupAgeSeconds !== undefined ? { backupAgeSeconds } : {}),
      ...(sizeDeviationRatio !== undefined ? { sizeDeviationRatio } : {}),
      repositoryUp,
      keys,
      signingKeys,
      ...(verification ? { verification } : {}),
      ...(drLagSeconds !== undefined ? { drLagSeconds } : {}),
      ...(walLastArchivedAt ? { walLastArchivedAt: walLastArchivedAt.toISOString() } : {}),
      ...(walGapSegments !== undefined ? { walGapSegments } : {}),
      ...(repositoryUp ? { untrustedBackups: untrusted.length } : {}),
      ...(untrustedWal !== undefined ? { untrustedWal } : {}),
      ...(audit ? { audit } : {}),
      ...(cluster ? { cluster, maxReplicationLagSeconds: ops.maxReplicationLagSeconds } : {}),
    },
  };
}

/**
 * Whether point-in-time recovery can run from the oldest complete base backup to the newest
 * segment, across failovers: timeline by timeline (checkContinuity), so a promotion's
 * `<timeline>.history` and the old timeline's segments up to the switch point are each needed,
 * by name. A segment number archived on another timeline does not stand in for a missing one
 * (summarizeWalArchive's merged view, still behind list and report, would let it). Only objects
 * sealed by a trusted key, or archived before sealing began, count: a planted object fills no
 * gap. Monitor holds no decryption key, so the switch points inside the .history files are not
 * read: the new timeline's first archived segment is taken as where it branched.
 */
function walChainCheck(
  complete: readonly BackupEntry[],
  walKeys: readonly string[],
  newestSegment: string | undefined,
): { check: MonitorCheck; missing: number } {
  const oldestBase = complete
    .map((e) => e.manifest)
    .filter((m): m is BaseManifest => m?.kind === 'base')
    .sort((a, b) => a.finishedAt.localeCompare(b.finishedAt))[0];
  if (!oldestBase)
    return {
      check: { name: 'wal-gaps', ok: true, detail: 'no complete base backup yet: the WAL chain is checked from the oldest one' },
      missing: 0,
    };
  const names = walKeys.map((key) => walFileOfKey(key)?.name).filter((name): name is string => name !== undefined);
  const report = checkContinuity(names, oldestBase.startWalSegment);
  if (report.ok) {
    const timelines = report.timelines.map((t) => `timeline ${t.timeline} ${t.first}..${t.last}`).join(', then ');
    return {
      check: {
        name: 'wal-gaps',
        ok: true,
        detail: `WAL chain whole from the oldest base backup ${oldestBase.id} to ${newestSegment ?? 'now'}: ${timelines}`,
      },
      missing: 0,
    };
  }
  return {
    check: {
      name: 'wal-gaps',
      ok: false,
      detail: `missing WAL after the oldest base backup ${oldestBase.id}: ${report.problems.join('; ')}; point-in-time recovery cannot cross a gap: take a new base backup`,
    },
    missing: Math.max(1, report.missing.length),
  };
}

/**
 * The signing side expires too: an expired jobs key stops the jobs, an expired WAL key stops
 * archiving. The keys in use are this job's own and the one that sealed the newest WAL; every
 * other trusted signer may be a retired key, kept listed for what it signed, which stays trusted
 * after it expires (so only its coming expiry is worth a warning, not its having expired).
 */
function signingKeyChecks(
  config: BackupConfig,
  report: SigningReport,
  walSigner: string | undefined,
  now: Date,
  checks: MonitorCheck[],
  keys: MonitorSigningKey[],
): void {
  if (config.keys.trustedSignersFile === undefined && config.keys.signingKeyFile === undefined) return;
  const warnDays = config.operations.keyExpiryWarnDays;
  if (report.signing) keys.push({ fingerprint: report.signing.fingerprint, role: 'signing', expiresAt: report.signing.expiresAt });
  for (const key of report.trusted) {
    if (key.fingerprint === report.signing?.fingerprint) continue;
    keys.push({ fingerprint: key.fingerprint, role: key.fingerprint === walSigner ? 'wal' : 'trusted', expiresAt: key.expiresAt });
  }
  const problems = [...report.problems];
  const soon = now.getTime() + warnDays * DAY;
  for (const key of keys) {
    if (key.expiresAt === null) continue;
    const at = Date.parse(key.expiresAt);
    const label = key.role === 'signing' ? 'signing key' : key.role === 'wal' ? 'WAL signing key' : 'trusted signer';
    if (at <= now.getTime() && key.role !== 'trusted')
      problems.push(`${label} ${key.fingerprint} expired on ${key.expiresAt.slice(0, 10)}: rotate it (docs/key-rotation.md)`);
    else if (at > now.getTime() && at <= soon)
      problems.push(
        `${label} ${key.fingerprint} expires on ${key.expiresAt.slice(0, 10)}: rotate it or extend its expiry (docs/key-rotation.md)`,
      );
  }
  checks.push(
    problems.length === 0
      ? {
          name: 'signing-keys',
          ok: true,
          detail: `${report.signing ? `signing key ${report.signing.fingerprint} and ` : ''}${report.trusted.length} trusted signer(s)${walSigner ? ` (WAL sealed by ${walSigner})` : ''}; none in use expires within ${warnDays} days`,
        }
      : { name: 'signing-keys', ok: false, detail: problems.join('; ') },
  );
}
