import type { ErrorCode } from '../errors/catalogue.js';

/** A recipient or decryption key as monitor/keys see it. */
export interface KeyExpiry {
  /** Full fingerprint (hex); becomes the `fingerprint` label. */
  readonly fingerprint: string;
  /** Undefined for a key that never expires (pushed as +Inf). */
  readonly expiresAt: Date | undefined;
}

export interface VerificationFacts {
  /** Every verify check passed. */
  readonly ok: boolean;
  readonly durationSeconds: number;
  /** When the verification finished (pass or fail). */
  readonly finishedAt: Date;
}

/** The audit log as monitor found it (src/commands/audit/audit-health.ts). */
export interface AuditHeadFacts {
  /** The newest sequence number the repository shows (0: no record yet). */
  readonly headSequence: number;
  /** That record's hash, 64 hex digits (null without records). */
  readonly headHash: string | null;
  /** Every record signed by a trusted key, in place, chained, none missing. */
  readonly chainOk: boolean;
}

/**
 * What one run of a pms-backup command reports. Only the facts a command actually knows are
 * set; everything left undefined is not pushed, so the Pushgateway keeps the value from the
 * last run that knew it (for example the size of the last good backup after a failed create).
 */
export interface CommandOutcome {
  /** The sub-command (create, verify, monitor, prune, ...); becomes the `command` grouping label. */
  readonly command: string;
  /**
   * The command's exit status was 0. For monitor this is false when a check found a problem,
   * even though monitor itself worked; `errorCode` tells the two apart.
   */
  readonly ok: boolean;
  /** The PMS_ERR_* code when the command failed with an error (absent when checks merely failed). */
  readonly errorCode?: ErrorCode | undefined;
  readonly startedAt: Date;
  readonly finishedAt: Date;
  /** Size of the backup this command created (create) or found newest (monitor). */
  readonly backupSizeBytes?: number | undefined;
  /** Age of the newest complete backup as observed in the repository (monitor). */
  readonly backupAgeSeconds?: number | undefined;
  /** (newest - previous) / previous backup size; 0.6 means 60 % larger (monitor). */
  readonly sizeDeviationRatio?: number | undefined;
  /** The repository answered a probe (monitor, doctor). */
  readonly repositoryUp?: boolean | undefined;
  /** Every configured key; an empty list pushes nothing. */
  readonly keys?: readonly KeyExpiry[] | undefined;
  /** monitor: the job's signing key (`signing`), the key that sealed the newest WAL (`wal`) and every other trusted signer (`trusted`). */
  readonly signingKeys?: readonly (KeyExpiry & { readonly role: 'signing' | 'wal' | 'trusted' })[] | undefined;
  readonly verification?: VerificationFacts | undefined;
  /** Time the newest WAL segment reached the repository (WAL archiving, monitor). */
  readonly walLastArchivedAt?: Date | undefined;
  /** Missing WAL segments between the oldest backup's start and the newest archived segment. */
  readonly walGapSegments?: number | undefined;
  /** monitor: backups in the repository whose manifest is not proved by a trusted signature. */
  readonly untrustedBackups?: number | undefined;
  /** WAL objects without a trusted sealed signature (monitor). */
  readonly untrustedWal?: number | undefined;
  /** Age of the oldest complete backup not yet copied to the DR repository (monitor, when configured). */
  readonly drLagSeconds?: number | undefined;
  /** The audit log's head and whether its chain verified (monitor). */
  readonly audit?: AuditHeadFacts | undefined;
  /** The HA cluster as Patroni's REST API describes it (monitor with BACKUP_PATRONI_URLS). */
  readonly cluster?: ClusterOutcome | undefined;
}

export interface ClusterOutcome {
  readonly leaderUp: boolean;
  readonly syncStandbys: number;
  /** Largest standby replay delay; undefined when unknown (no standby or no position). */
  readonly replicationLagSeconds: number | undefined;
  readonly maxReplicationLagSeconds: number;
  readonly timeline: number | undefined;
  readonly lastFailoverAt: Date | undefined;
}
