import type { TrustPolicy } from '../../crypto/signing.js';
import { type BackupEntry, listBackups } from '../../repository/backup-catalog.js';
import { backupPrefix, manifestKey } from '../../repository/layout.js';
import type { Storage } from '../../storage/storage.js';
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
}

export interface PruneResult {
  readonly dryRun: boolean;
  readonly retentionDays: number;
  readonly decisions: PruneDecision[];
  readonly deleted: number;
  readonly kept: number;
  readonly bytesFreed: number;
  readonly abandonedUploadsRemoved: number;
  /** WAL files older than the oldest retained base backup's start segment. */
  readonly walDeleted: number;
  readonly walKeptFrom: string | null;
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

/** Deletes a backup: manifest first, so an interrupted delete leaves an incomplete backup, never a "complete" one with missing data. */
export async function deleteBackup(storage: Storage, id: string): Promise<number> {
  let bytes = 0;
  const manifest = await storage.head(manifestKey(id));
  if (manifest) {
    bytes += manifest.bytes;
    await storage.delete(manifestKey(id));
  }
  for await (const object of storage.list(backupPrefix(id))) {
    bytes += object.bytes;
    await storage.delete(object.key);
  }
  return bytes;
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
  const decisions = await planPrune(storage, trust, retentionDays, now);
  let bytesFreed = 0;
  let abandonedUploadsRemoved = 0;
  if (!options.dryRun) {
    for (const decision of decisions.filter((d) => d.action === 'delete')) bytesFreed += await deleteBackup(storage, decision.id);
    abandonedUploadsRemoved = await storage.removeIncomplete(new Date(now.getTime() - INCOMPLETE_GRACE_MS)).catch(() => 0);
  }
  // WAL: every segment a retained base backup needs stays (from the oldest one's start
  // segment on); without any base backup the archive is left alone rather than guessed at.
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
  const walDeleted = oldestBase ? (await pruneWal(storage, { keepFromSegment: oldestBase, dryRun: options.dryRun })).length : 0;
  return {
    dryRun: options.dryRun,
    retentionDays,
    decisions,
    deleted: decisions.filter((d) => d.action === 'delete').length,
    kept: decisions.filter((d) => d.action === 'keep').length,
    bytesFreed,
    abandonedUploadsRemoved,
    walDeleted,
    walKeptFrom: oldestBase ?? null,
  };
}
