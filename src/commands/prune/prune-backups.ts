import type { TrustPolicy } from '../../crypto/signing.js';
import { type BackupEntry, listBackups } from '../../repository/backup-catalog.js';
import { backupPrefix, manifestKey } from '../../repository/layout.js';
import type { DeleteResult, Storage } from '../../storage/storage.js';
import { listVerifications } from '../../repository/verification-record.js';
import { parseWalFileName } from '../../wal/wal-file-name.js';
import { pruneWal } from '../../wal/wal-retention.js';

const DAY = 24 * 3600 * 1000;
/** An incomplete backup younger than this may still be running. */
const INCOMPLETE_GRACE_MS = DAY;

export interface PruneDecision {
  readonly id: string;
  readonly kind: string;
  readonly status: string;
  readonly createdAt: string;
  readonly action: 'delete' | 'keep';
  readonly reason: string;
  /**
   * Set when S3 Object Lock refused the deletion: the backup was left as it is and a later prune
   * deletes it. The end of its retention (ISO time), or null when a legal hold keeps it.
   */
  readonly lockedUntil?: string | null;
}

export interface PruneResult {
  readonly dryRun: boolean;
  readonly retentionDays: number;
  readonly decisions: PruneDecision[];
  /** Backups deleted (dry run: that would be), not counting those Object Lock still holds. */
  readonly deleted: number;
  readonly kept: number;
  /** Backups due for deletion that Object Lock still holds (see PruneDecision.lockedUntil). */
  readonly locked: number;
  readonly bytesFreed: number;
  readonly abandonedUploadsRemoved: number;
  /** WAL files older than the oldest retained base backup's start segment. */
  readonly walDeleted: number;
  /** Of those, files Object Lock still holds; they are deleted by a later prune. */
  readonly walLocked: number;
  /** The latest retention end among the WAL files still held (ISO time), or null. */
  readonly walLockedUntil: string | null;
  readonly walKeptFrom: string | null;
}

type Retained = NonNullable<DeleteResult['retained']>;

/** The retention that keeps data longest (a legal hold has no end). */
function longer(a: Retained | undefined, b: Retained): Retained {
  if (a === undefined) return b;
  const legalHold = a.legalHold || b.legalHold;
  if (legalHold || a.until === undefined || b.until === undefined) return { until: undefined, legalHold: true };
  return { until: new Date(Math.max(a.until.getTime(), b.until.getTime())), legalHold: false };
}

function lockedUntil(retained: Retained): string | null {
  return retained.legalHold || retained.until === undefined ? null : retained.until.toISOString();
}

export interface BackupDeletion {
  /** Bytes actually deleted. */
  readonly bytes: number;
  /** Set when Object Lock holds some of the backup's objects; they stay until a later prune. */
  readonly retained?: Retained;
}

/**
 * Retention: complete backups older than retentionDays go, but never the newest complete
 * backup of each kind nor the newest verified one; incomplete leftovers go after 24 h; corrupt
 * ones are kept for investigation. Decisions are made first, then applied, so --dry-run shows
 * exactly what a real run does.
 */
export async function planPrune(storage: Storage, trust: TrustPolicy, retentionDays: number, now = new Date()): Promise<PruneDecision[]> {
  const entries = await listBackups(storage, trust);
  const verifiedIds = new Set((await listVerifications(storage, trust)).filter((v) => v.ok).map((v) => v.id));
  const protectedIds = new Map<string, string>();
  for (const kind of new Set(entries.map((e) => e.kind))) {
    const ofKind = entries.filter((e) => e.kind === kind && e.status === 'complete');
    const newest = ofKind[0];
    if (newest) protectedIds.set(newest.id, `newest complete ${kind} backup`);
    const newestVerified = ofKind.find((e) => verifiedIds.has(e.id));
    if (newestVerified && !protectedIds.has(newestVerified.id)) protectedIds.set(newestVerified.id, `newest verified ${kind} backup`);
  }
  const cutoff = now.getTime() - retentionDays * DAY;
  return entries.map((entry: BackupEntry): PruneDecision => {
    const base = { id: entry.id, kind: entry.kind, status: entry.status, createdAt: entry.createdAt };
    const created = Date.parse(entry.createdAt);
    if (entry.status === 'corrupt') return { ...base, action: 'keep', reason: 'corrupt manifest: kept for investigation' };
    // Evidence of tampering is kept, and never counts as the newest backup of its kind.
    if (entry.status === 'untrusted') return { ...base, action: 'keep', reason: 'untrusted manifest: kept for investigation' };
    if (entry.status === 'incomplete') {
      return now.getTime() - created > INCOMPLETE_GRACE_MS
        ? { ...base, action: 'delete', reason: 'incomplete leftover older than 24 h' }
        : { ...base, action: 'keep', reason: 'incomplete, younger than 24 h (may still be running)' };
    }
    const protectedReason = protectedIds.get(entry.id);
    if (protectedReason) return { ...base, action: 'keep', reason: protectedReason };
    return created < cutoff
      ? { ...base, action: 'delete', reason: `older than ${retentionDays} days` }
      : { ...base, action: 'keep', reason: `within ${retentionDays} days` };
  });
}

/**
 * Deletes a backup, freeing its data (purge: under Object Lock every version whose retention
 * has passed). The manifest goes first, so an interrupted delete leaves an incomplete backup,
 * never a "complete" one with missing data. If Object Lock still holds the manifest (written
 * last, it is retained longest) nothing else is touched and the backup stays whole; objects
 * held beyond it (an extended retention) are left and reported, and the next prune, seeing an
 * incomplete backup, finishes the job.
 */
export async function deleteBackup(storage: Storage, id: string): Promise<BackupDeletion> {
  let bytes = 0;
  let retained: Retained | undefined;
  const manifest = await storage.head(manifestKey(id));
  if (manifest) {
    const result = await storage.delete(manifestKey(id), { purge: true });
    if (result.retained) return { bytes: 0, retained: result.retained };
    bytes += manifest.bytes;
  }
  for await (const object of storage.list(backupPrefix(id))) {
    const result = await storage.delete(object.key, { purge: true });
    if (result.retained) retained = longer(retained, result.retained);
    else bytes += object.bytes;
  }
  return retained === undefined ? { bytes } : { bytes, retained };
}

function segmentNumber(name: string): number {
  const file = parseWalFileName(name);
  return file?.kind === 'segment' ? file.segment : Number.POSITIVE_INFINITY;
}

export async function pruneBackups(
  storage: Storage,
  trust: TrustPolicy,
  retentionDays: number,
  options: { dryRun: boolean; now?: Date },
): Promise<PruneResult> {
  const now = options.now ?? new Date();
  const planned = await planPrune(storage, trust, retentionDays, now);
  let bytesFreed = 0;
  let abandonedUploadsRemoved = 0;
  const decisions: PruneDecision[] = [];
  for (const decision of planned) {
    if (options.dryRun || decision.action !== 'delete') {
      decisions.push(decision);
      continue;
    }
    const deletion = await deleteBackup(storage, decision.id);
    bytesFreed += deletion.bytes;
    decisions.push(deletion.retained ? { ...decision, lockedUntil: lockedUntil(deletion.retained) } : decision);
  }
  if (!options.dryRun) {
    abandonedUploadsRemoved = await storage.removeIncomplete(new Date(now.getTime() - INCOMPLETE_GRACE_MS)).catch(() => 0);
  }
  // WAL: every segment a retained base backup needs stays (from the oldest one's start
  // segment on); without any base backup the archive is left alone rather than guessed at.
  // A base backup Object Lock kept is still there, so its WAL stays with it.
  const retainedBases = (await listBackups(storage, trust)).filter(
    (e) =>
      e.manifest?.kind === 'base' &&
      e.status === 'complete' &&
      !(options.dryRun && decisions.some((d) => d.id === e.id && d.action === 'delete')),
  );
  const oldestBase = retainedBases
    .map((e) => (e.manifest?.kind === 'base' ? e.manifest.startWalSegment : undefined))
    .filter((s): s is string => s !== undefined)
    // By segment number, not by name: the name starts with the timeline, and after a
    // point-in-time restore a newer timeline's base backup can start at a lower segment.
    .sort((a, b) => segmentNumber(a) - segmentNumber(b))[0];
  const doomedWal = oldestBase ? await pruneWal(storage, { keepFromSegment: oldestBase, dryRun: true }) : [];
  let walLocked = 0;
  let walRetained: Retained | undefined;
  if (!options.dryRun) {
    for (const key of doomedWal) {
      const result = await storage.delete(key, { purge: true });
      if (result.retained === undefined) continue;
      walLocked += 1;
      walRetained = longer(walRetained, result.retained);
    }
  }
  const locked = decisions.filter((d) => d.lockedUntil !== undefined).length;
  return {
    dryRun: options.dryRun,
    retentionDays,
    decisions,
    deleted: decisions.filter((d) => d.action === 'delete').length - locked,
    kept: decisions.filter((d) => d.action === 'keep').length,
    locked,
    bytesFreed,
    abandonedUploadsRemoved,
    walDeleted: doomedWal.length - walLocked,
    walLocked,
    walLockedUntil: walRetained ? lockedUntil(walRetained) : null,
    walKeptFrom: oldestBase ?? null,
  };
}
