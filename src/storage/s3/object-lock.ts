import type { HeadObjectCommandOutput, ObjectLockMode } from '@aws-sdk/client-s3';
import type { ObjectLockSettings } from '../../config/config.js';

const DAY_MS = 24 * 3600 * 1000;

export interface LockParams {
  readonly ObjectLockMode: ObjectLockMode;
  readonly ObjectLockRetainUntilDate: Date;
}

/** The retention a version written now gets: its write time plus BACKUP_S3_OBJECT_LOCK_DAYS. */
export function lockParams(lock: ObjectLockSettings, now = Date.now()): LockParams {
  return { ObjectLockMode: lock.mode, ObjectLockRetainUntilDate: new Date(now + lock.days * DAY_MS) };
}

/** Why S3 will not delete a version yet, or undefined when Object Lock does not hold it. */
export interface Retention {
  /** End of its retention period; undefined when only a legal hold keeps it. */
  readonly until: Date | undefined;
  readonly legalHold: boolean;
}

export function retentionOf(head: HeadObjectCommandOutput, now = Date.now()): Retention | undefined {
  const until = head.ObjectLockRetainUntilDate;
  const legalHold = head.ObjectLockLegalHoldStatus === 'ON';
  const retained = until !== undefined && until.getTime() > now;
  if (!retained && !legalHold) return undefined;
  return { until: retained ? until : undefined, legalHold };
}
