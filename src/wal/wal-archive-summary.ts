import type { TrustPolicy } from '../crypto/signing.js';
import { listBackups } from '../repository/backup-catalog.js';
import type { BaseManifest } from '../repository/manifest.js';
import type { Storage } from '../storage/storage.js';
import { parseWalFileName, segmentName } from './wal-file-name.js';
import { checkContinuity } from './timeline-continuity.js';
import { WAL_PREFIX, walFileOfKey } from '../repository/wal-layout.js';
import type { WalTrustSurvey } from '../repository/wal-object-signature.js';

export interface WalGap {
  /** First missing segment name (or a missing `<timeline>.history`). */
  readonly from: string;
  /** Last missing segment name (the same .history). */
  readonly to: string;
}

export interface WalArchiveSummary {
  readonly segments: number;
  /** Stored bytes of every archived WAL object. */
  readonly bytes: number;
  readonly newestSegment: string | undefined;
  /** When the newest segment was stored (its last commit is at most this old). */
  readonly newestSegmentAt: Date | undefined;
  /** End of the oldest complete base backup whose WAL chain to its stop segment is whole. */
  readonly earliestRestorableTime: Date | undefined;
  /** Storage time of the last segment of the unbroken chain after the newest usable base backup. */
  readonly latestRestorableTime: Date | undefined;
  /**
   * What point-in-time recovery from the oldest base backup would lack, timeline by timeline
   * (checkContinuity): runs of missing segments, and a missing `<timeline>.history` as a run
   * of its own (`from` = `to` = its name).
   */
  readonly gaps: readonly WalGap[];
}

/**
 * What monitor and list need to know about the WAL archive. For the restorable window, timelines
 * are handled simply: a segment number counts as present if it is archived on any timeline from
 * the base backup's onwards (a promotion continues the same segment numbers on the next
 * timeline); `gaps` follows the chain timeline by timeline, as recovery does. Times are
 * storage times, an upper bound of the last commit inside a segment (reading it would mean
 * decrypting every segment). Given `walTrust` (monitor), only segments whose sealed signature
 * verified count as the newest, and planted ones do not count at all.
 */
export async function summarizeWalArchive(
  storage: Storage,
  trust: TrustPolicy,
  now = new Date(),
  walTrust?: WalTrustSurvey,
): Promise<WalArchiveSummary> {
  const present = new Map<number, { name: string; at: Date; timeline: number }>();
  let segments = 0;
  let bytes = 0;
  let newest: { name: string; at: Date; segment: number; timeline: number } | undefined;
  const names: string[] = [];
  for await (const object of storage.list(WAL_PREFIX)) {
    const file = walFileOfKey(object.key);
    bytes += object.bytes;
    if (file === undefined || (file.kind !== 'segment' && file.kind !== 'history')) continue;
    // With a trust survey: planted objects neither fill a gap nor count as the newest; legacy
    // ones (unsigned, from before sealing) keep the chain whole but never make WAL look fresh.
    const sealed = walTrust?.trusted.get(object.key);
    if (walTrust && sealed === undefined && !walTrust.legacy.has(object.key)) continue;
    names.push(file.name);
    if (file.kind !== 'segment') continue;
    // The seal's own time, not the storage time: re-putting a genuine object must not make it new.
    const at = sealed ? new Date(Math.min(object.modifiedAt.getTime(), Date.parse(sealed.facts.signedAt))) : object.modifiedAt;
    segments += 1;
    const seen = present.get(file.segment);
    if (!seen || file.timeline > seen.timeline) present.set(file.segment, { name: file.name, at, timeline: file.timeline });
    if (walTrust && sealed === undefined) continue;
    if (!newest || file.segment > newest.segment || (file.segment === newest.segment && file.timeline > newest.timeline)) {
      newest = { name: file.name, at, segment: file.segment, timeline: file.timeline };
    }
  }
  const bases = (await listBackups(storage, trust))
    .map((e) => (e.status === 'complete' && e.manifest?.kind === 'base' ? e.manifest : undefined))
    .filter((m): m is BaseManifest => m !== undefined)
    .sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
  const numberOf = (name: string): number => (parseWalFileName(name) as { segment: number }).segment;
  const whole = (from: number, to: number): boolean => {
    for (let s = from; s <= to; s += 1) if (!present.has(s)) return false;
    return true;
  };
  const usable = bases.filter((b) => whole(numberOf(b.startWalSegment), numberOf(b.stopWalSegment)));
  const oldest = bases[0];
  const gaps = oldest && newest ? runsOf(checkContinuity(names, oldest.startWalSegment).missing) : [];
  let latest: Date | undefined;
  const newestUsable = usable[usable.length - 1];
  if (newestUsable) {
    let s = numberOf(newestUsable.stopWalSegment);
    while (present.has(s + 1)) s += 1;
    latest = present.get(s)?.at;
  }
  void now;
  return {
    segments,
    bytes,
    newestSegment: newest?.name,
    newestSegmentAt: newest?.at,
    earliestRestorableTime: usable[0] ? new Date(usable[0].finishedAt) : undefined,
    latestRestorableTime: latest,
    gaps,
  };
}

/** Missing names as runs: consecutive segments of one timeline together, each .history alone. */
function runsOf(missing: readonly string[]): WalGap[] {
  const gaps: WalGap[] = [];
  let run: { timeline: number; first: number; last: number } | undefined;
  const close = (): void => {
    if (run) gaps.push({ from: segmentName(run.timeline, run.first), to: segmentName(run.timeline, run.last) });
    run = undefined;
  };
  for (const name of missing) {
    const file = parseWalFileName(name);
    if (file?.kind !== 'segment') {
      close();
      gaps.push({ from: name, to: name });
      continue;
    }
    if (run && run.timeline === file.timeline && run.last + 1 === file.segment) run.last = file.segment;
    else {
      close();
      run = { timeline: file.timeline, first: file.segment, last: file.segment };
    }
  }
  close();
  return gaps;
}
