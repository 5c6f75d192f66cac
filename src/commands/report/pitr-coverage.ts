/** One archived WAL segment as the wal/ listing shows it (name, size, storage time). */
export interface ArchivedSegment {
  readonly segment: number;
  readonly bytes: number;
  readonly at: Date;
}

/** What of a complete, trusted base backup the coverage needs. */
export interface BaseBackupSpan {
  readonly startSegment: number;
  readonly stopSegment: number;
  readonly finishedAt: Date;
}

/** One UTC day of the report month: what point-in-time recovery could reach that day. */
export interface DailyCoverage {
  /** YYYY-MM-DD (UTC). */
  readonly date: string;
  /** WAL segments stored that day, and their bytes. */
  readonly walSegments: number;
  readonly walBytes: number;
  /** Oldest moment PITR could start from, as of the end of the day (null: no usable base backup yet). */
  readonly recoverableFrom: string | null;
  /** Newest moment PITR could reach at the end of the day (or now, today). */
  readonly recoverableTo: string | null;
  /**
   * The measured RPO: the largest time during the day between "now" and the newest recoverable
   * point before it, i.e. the most data a disaster at the worst moment of the day would have lost.
   * null when no moment of the day had any recoverable point before it.
   */
  readonly worstRpoSeconds: number | null;
  /** Seconds of the day with no recoverable point at all before them (PITR impossible then). */
  readonly uncoveredSeconds: number;
  /** False for days after `now` (nothing measured yet). */
  readonly measured: boolean;
}

const DAY_MS = 86_400_000;

/**
 * The moments PITR can reach: each usable base backup's end (its WAL from start to stop is
 * archived) and every later segment while the chain stays unbroken. A segment counts from its
 * first storage time, an upper bound of its last commit (reading it would mean decrypting it).
 */
export function recoverablePoints(segments: readonly ArchivedSegment[], bases: readonly BaseBackupSpan[]): number[] {
  const firstStored = new Map<number, number>();
  for (const s of segments) {
    const seen = firstStored.get(s.segment);
    if (seen === undefined || s.at.getTime() < seen) firstStored.set(s.segment, s.at.getTime());
  }
  const points = new Set<number>();
  for (const base of bases) {
    let whole = true;
    let ready = base.finishedAt.getTime();
    for (let s = base.startSegment; s <= base.stopSegment; s += 1) {
      const at = firstStored.get(s);
      if (at === undefined) {
        whole = false;
        break;
      }
      ready = Math.max(ready, at);
    }
    if (!whole) continue;
    points.add(ready);
    for (let s = base.stopSegment + 1; firstStored.has(s); s += 1) points.add(Math.max(ready, firstStored.get(s)!));
  }
  return [...points].sort((a, b) => a - b);
}

/** Index of the last point ≤ t, or -1 (points ascending). */
function lastAtOrBefore(points: readonly number[], t: number): number {
  let lo = 0;
  let hi = points.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid]! <= t) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/**
 * Day by day, the PITR window and the worst-case data loss. For a disaster at t the loss is
 * t − (newest recoverable point ≤ t); within a day that is largest just before each new point
 * and at the day's end, so only those moments need checking.
 */
export function dailyCoverage(
  monthStart: Date,
  days: number,
  segments: readonly ArchivedSegment[],
  bases: readonly BaseBackupSpan[],
  now: Date,
): DailyCoverage[] {
  const points = recoverablePoints(segments, bases);
  const result: DailyCoverage[] = [];
  for (let d = 0; d < days; d += 1) {
    const start = monthStart.getTime() + d * DAY_MS;
    const end = Math.min(start + DAY_MS, now.getTime());
    const date = new Date(start).toISOString().slice(0, 10);
    const stored = segments.filter((s) => s.at.getTime() >= start && s.at.getTime() < start + DAY_MS);
    const walBytes = stored.reduce((sum, s) => sum + s.bytes, 0);
    if (end <= start) {
      result.push({
        date,
        walSegments: 0,
        walBytes: 0,
        recoverableFrom: null,
        recoverableTo: null,
        worstRpoSeconds: null,
        uncoveredSeconds: 0,
        measured: false,
      });
      continue;
    }
    let worst: number | null = null;
    const consider = (t: number): void => {
      const i = lastAtOrBefore(points, t - 1);
      if (i >= 0) worst = Math.max(worst ?? 0, t - points[i]!);
    };
    const last = lastAtOrBefore(points, end);
    for (let i = lastAtOrBefore(points, start) + 1; i <= last; i += 1) consider(points[i]!);
    consider(end);
    const firstPoint = points[0];
    const uncovered = firstPoint === undefined || firstPoint > end ? end - start : Math.max(0, firstPoint - start);
    const to = last >= 0 ? points[last]! : undefined;
    const from = to === undefined ? undefined : points[0];
    result.push({
      date,
      walSegments: stored.length,
      walBytes,
      recoverableFrom: from === undefined ? null : new Date(from).toISOString(),
      recoverableTo: to === undefined ? null : new Date(to).toISOString(),
      worstRpoSeconds: worst === null ? null : Math.round(worst / 1000),
      uncoveredSeconds: Math.round(uncovered / 1000),
      measured: true,
    });
  }
  return result;
}
