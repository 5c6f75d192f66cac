import { Counter, Gauge, Registry } from 'prom-client';
import type { CommandOutcome } from './command-outcome.js';

/**
 * Every metric pms-backup pushes. Names are a contract with
 * monitoring/prometheus/pms-backup-rules.yaml and docs/monitoring.md: only add, never rename.
 * None carries `job`, `command` or `instance`: the Pushgateway adds those from the grouping key.
 */
export const METRIC = {
  duration: 'pms_backup_duration_seconds',
  size: 'pms_backup_size_bytes',
  success: 'pms_backup_success_total',
  failure: 'pms_backup_failure_total',
  age: 'pms_backup_age_seconds',
  lastSuccess: 'pms_backup_last_success_timestamp_seconds',
  lastRunSuccess: 'pms_backup_last_run_success',
  sizeDeviation: 'pms_backup_size_deviation_ratio',
  repositoryUp: 'pms_backup_repository_up',
  keyExpiry: 'pms_backup_key_expiry_timestamp_seconds',
  signingKeyExpiry: 'pms_backup_signing_key_expiry_timestamp_seconds',
  verificationSuccess: 'pms_backup_verification_success',
  verificationDuration: 'pms_backup_verification_duration_seconds',
  verificationLast: 'pms_backup_verification_last_timestamp_seconds',
  walLastArchived: 'pms_backup_wal_last_archived_timestamp_seconds',
  walGap: 'pms_backup_wal_gap_segments',
  walReadyFiles: 'pms_backup_wal_archive_ready_files',
  walOldestReady: 'pms_backup_wal_archive_oldest_ready_seconds',
  drLag: 'pms_backup_dr_lag_seconds',
  untrustedBackups: 'pms_backup_untrusted_backups',
  untrustedWal: 'pms_backup_untrusted_wal',
  auditHeadSequence: 'pms_backup_audit_head_sequence',
  auditHeadInfo: 'pms_backup_audit_head_info',
  auditChainOk: 'pms_backup_audit_chain_ok',
  postgresLeaderUp: 'pms_backup_postgres_leader_up',
  postgresSyncStandbys: 'pms_backup_postgres_sync_standbys',
  postgresReplicationLag: 'pms_backup_postgres_replication_lag_seconds',
  postgresReplicationLagLimit: 'pms_backup_postgres_replication_lag_limit_seconds',
  postgresTimeline: 'pms_backup_postgres_timeline',
  postgresLastFailover: 'pms_backup_postgres_last_failover_timestamp_seconds',
} as const;

/** How much of the head's hash the info metric shows: enough for `audit verify --anchor`. */
export const AUDIT_HASH_PREFIX_DIGITS = 12;

/** Counter values already held by the Pushgateway for this command's group. */
export interface CounterValues {
  readonly success: number;
  readonly failure: number;
}

const seconds = (date: Date): number => date.getTime() / 1000;

/**
 * A fresh registry holding only what this run knows. Counters continue from `previous`
 * because every run is a new process and the Pushgateway replaces values instead of adding.
 */
export function buildCommandRegistry(outcome: CommandOutcome, previous: CounterValues): Registry {
  const registry = new Registry();
  const registers = [registry];
  const gauge = (name: string, help: string, value: number): void => {
    new Gauge({ name, help, registers }).set(value);
  };

  new Counter({ name: METRIC.success, help: 'Runs of this command that exited 0.', registers }).inc(
    previous.success + (outcome.ok ? 1 : 0),
  );
  new Counter({ name: METRIC.failure, help: 'Runs of this command that exited non-zero.', registers }).inc(
    previous.failure + (outcome.ok ? 0 : 1),
  );

  gauge(
    METRIC.duration,
    'Wall-clock duration of the last run of this command.',
    Math.max(0, (outcome.finishedAt.getTime() - outcome.startedAt.getTime()) / 1000),
  );

  // error_code names the failure in the alert without a log search; on success the label is absent.
  const lastRun = new Gauge({
    name: METRIC.lastRunSuccess,
    help: '1 if the last run of this command exited 0, else 0.',
    labelNames: ['error_code'],
    registers,
  });
  if (outcome.ok) lastRun.set(1);
  else lastRun.set(outcome.errorCode ? { error_code: outcome.errorCode } : {}, 0);

  // Left out on failure so the Pushgateway keeps the previous success time (pushAdd semantics).
  if (outcome.ok) gauge(METRIC.lastSuccess, 'Unix time the last successful run of this command finished.', seconds(outcome.finishedAt));

  if (outcome.backupSizeBytes !== undefined)
    gauge(METRIC.size, 'Size in bytes of the backup the command created or found newest.', outcome.backupSizeBytes);
  if (outcome.backupAgeSeconds !== undefined)
    gauge(METRIC.age, 'Age in seconds of the newest complete backup when the command looked.', outcome.backupAgeSeconds);
  if (outcome.sizeDeviationRatio !== undefined) {
    gauge(METRIC.sizeDeviation, '(newest - previous) / previous size of the two newest complete backups.', outcome.sizeDeviationRatio);
  }
  if (outcome.repositoryUp !== undefined)
    gauge(METRIC.repositoryUp, '1 if the backup repository answered a probe, else 0.', outcome.repositoryUp ? 1 : 0);

  if (outcome.keys !== undefined && outcome.keys.length > 0) {
    const keys = new Gauge({
      name: METRIC.keyExpiry,
      help: 'Unix time a configured OpenPGP key expires (+Inf: never).',
      labelNames: ['fingerprint'],
      registers,
    });
    for (const key of outcome.keys) {
      keys.set(
        { fingerprint: key.fingerprint.toUpperCase() },
        key.expiresAt === undefined ? Number.POSITIVE_INFINITY : seconds(key.expiresAt),
      );
    }
  }

  if (outcome.signingKeys !== undefined && outcome.signingKeys.length > 0) {
    const keys = new Gauge({
      name: METRIC.signingKeyExpiry,
      help: 'Unix time a signing key expires (+Inf: never); role signing: this job signs with it, wal: it sealed the newest WAL, trusted: another listed signer.',
      labelNames: ['fingerprint', 'role'],
      registers,
    });
    for (const key of outcome.signingKeys) {
      keys.set(
        { fingerprint: key.fingerprint.toUpperCase(), role: key.role },
        key.expiresAt === undefined ? Number.POSITIVE_INFINITY : seconds(key.expiresAt),
      );
    }
  }

  if (outcome.verification !== undefined) {
    gauge(METRIC.verificationSuccess, '1 if the last verification passed every check, else 0.', outcome.verification.ok ? 1 : 0);
    gauge(METRIC.verificationDuration, 'Duration of the last verification (fetch, restore, checks).', outcome.verification.durationSeconds);
    gauge(
      METRIC.verificationLast,
      'Unix time the last verification finished, whatever its result.',
      seconds(outcome.verification.finishedAt),
    );
  }

  if (outcome.walLastArchivedAt !== undefined) {
    gauge(METRIC.walLastArchived, 'Unix time the newest WAL segment reached the repository.', seconds(outcome.walLastArchivedAt));
  }
  if (outcome.untrustedBackups !== undefined) {
    gauge(
      METRIC.untrustedBackups,
      'Backups whose manifest is unsigned, badly signed or signed by an untrusted key (planted or tampered with).',
      outcome.untrustedBackups,
    );
  }
  if (outcome.untrustedWal !== undefined) {
    gauge(
      METRIC.untrustedWal,
      'WAL objects whose sealed signature is bad, by an untrusted key, or missing although wal-push seals WAL (planted or tampered with).',
      outcome.untrustedWal,
    );
  }
  if (outcome.walGapSegments !== undefined)
    gauge(
      METRIC.walGap,
      'WAL files (segments, timeline .history files) missing from the chain between the oldest base backup and the newest segment, timeline by timeline.',
      outcome.walGapSegments,
    );

  if (outcome.drLagSeconds !== undefined) {
    gauge(
      METRIC.drLag,
      'Seconds the oldest complete backup missing from the disaster-recovery repository has existed (0: DR is complete).',
      outcome.drLagSeconds,
    );
  }

  if (outcome.cluster !== undefined) {
    const cluster = outcome.cluster;
    gauge(METRIC.postgresLeaderUp, '1 if Patroni reports a leader for the HA cluster, else 0.', cluster.leaderUp ? 1 : 0);
    gauge(
      METRIC.postgresSyncStandbys,
      'Synchronous standbys streaming from the leader (0: a commit is on one node only).',
      cluster.syncStandbys,
    );
    // Unknown lag (a standby without a position) is pushed as +Inf: it must alert, not vanish.
    gauge(
      METRIC.postgresReplicationLag,
      'Largest replay delay of a standby behind the leader, in seconds (+Inf: unknown).',
      cluster.replicationLagSeconds ?? Number.POSITIVE_INFINITY,
    );
    gauge(
      METRIC.postgresReplicationLagLimit,
      'BACKUP_MAX_REPLICATION_LAG_SECONDS, the limit the lag alert compares with.',
      cluster.maxReplicationLagSeconds,
    );
    if (cluster.timeline !== undefined)
      gauge(METRIC.postgresTimeline, "The leader's timeline (it goes up by one at every failover or switchover).", cluster.timeline);
    if (cluster.lastFailoverAt !== undefined)
      gauge(
        METRIC.postgresLastFailover,
        'Unix time the current timeline began (the last failover or switchover).',
        seconds(cluster.lastFailoverAt),
      );
  }

  if (outcome.audit !== undefined) {
    // Prometheus keeps the history the repository cannot: a sequence that goes down, or a hash
    // that changes while the sequence stands still, is a log rewritten (the alert rules).
    gauge(METRIC.auditHeadSequence, 'Newest sequence number in the audit log when monitor looked (0: none).', outcome.audit.headSequence);
    gauge(
      METRIC.auditChainOk,
      '1 if every audit record verified (signed, in place, chained, none missing), else 0.',
      outcome.audit.chainOk ? 1 : 0,
    );
    if (outcome.audit.headHash !== null) {
      new Gauge({
        name: METRIC.auditHeadInfo,
        help: 'Always 1; labels name the audit head (sequence, first 12 hex digits of its hash) for audit verify --anchor SEQ:HASH.',
        labelNames: ['sequence', 'hash_prefix'],
        registers,
      }).set({ sequence: String(outcome.audit.headSequence), hash_prefix: outcome.audit.headHash.slice(0, AUDIT_HASH_PREFIX_DIGITS) }, 1);
    }
  }

  return registry;
}
