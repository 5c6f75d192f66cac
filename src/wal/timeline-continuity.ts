import { WAL_PREFIX, walFileOfKey } from '../repository/wal-layout.js';
import type { Storage } from '../storage/storage.js';
import { type WalFile, parseWalFileName, segmentName, segmentOfLsn } from './wal-file-name.js';

export interface TimelineSpan {
  readonly timeline: number;
  /** First and last segment of the timeline that the chain uses. */
  readonly first: string;
  readonly last: string;
  /** Whether <timeline>.history is archived (always true for timeline 1, which has none). */
  readonly history: boolean;
}

export interface ContinuityReport {
  /** No segment, history file or switch point is missing from `from` to the newest segment. */
  readonly ok: boolean;
  readonly timelines: readonly TimelineSpan[];
  /** One sentence per problem, naming the file that is missing. */
  readonly problems: readonly string[];
  /** The names of the segments and .history files the chain needs but the archive lacks. */
  readonly missing: readonly string[];
}

/**
 * Whether an archive holds an unbroken chain of WAL from segment `from` through the newest
 * timeline, across failovers. A promotion at a switch point in segment S makes the new timeline
 * start at S (PostgreSQL copies the old timeline's part of S into the new file), so the chain is:
 * the old timeline's segments up to S - 1, then <new>.history, then the new timeline's from S on.
 * The old timeline's own S is not needed (a dead primary leaves it at most as a .partial).
 * `switchPoints` (timeline → the LSN its .history file gives as where it branched, when the
 * caller can read them) also proves each new timeline starts in the segment of its switch point.
 */
export function checkContinuity(
  names: Iterable<string>,
  from: string,
  switchPoints: ReadonlyMap<number, string> = new Map(),
): ContinuityReport {
  const start = parseWalFileName(from);
  if (start?.kind !== 'segment') return { ok: false, timelines: [], problems: [`${from} is not a WAL segment name`], missing: [] };
  const segments = new Map<number, Set<number>>();
  const histories = new Set<number>();
  for (const name of names) {
    const file: WalFile | undefined = parseWalFileName(name);
    if (file?.kind === 'segment') {
      const set = segments.get(file.timeline) ?? new Set<number>();
      set.add(file.segment);
      segments.set(file.timeline, set);
    } else if (file?.kind === 'history') histories.add(file.timeline);
  }
  const problems: string[] = [];
  const missing: string[] = [];
  const timelines = [...segments.keys()].filter((t) => t >= start.timeline).sort((a, b) => a - b);
  const spans: TimelineSpan[] = [];
  let cursor = start.segment;
  for (const [index, timeline] of timelines.entries()) {
    const own = segments.get(timeline) ?? new Set<number>();
    const next = timelines[index + 1];
    const firstOwn = lowest(own);
    const begin = index === 0 ? cursor : firstOwn;
    if (index > 0) {
      if (!histories.has(timeline)) {
        const history = `${segmentName(timeline, 0).slice(0, 8)}.history`;
        problems.push(`${history} is not archived`);
        missing.push(history);
      }
      if (firstOwn > cursor) {
        const previous = timelines[index - 1] ?? timeline;
        problems.push(
          `timeline ${timeline} starts at ${segmentName(timeline, firstOwn)}, after ${segmentName(previous, cursor - 1)}: segments in between are missing`,
        );
        // A timeline's first segment is where it branched, so what lies before it was the
        // previous timeline's to archive.
        for (let s = cursor; s < firstOwn; s += 1) missing.push(segmentName(previous, s));
      }
      const switchLsn = switchPoints.get(timeline);
      if (switchLsn !== undefined && segmentOfLsn(switchLsn) !== firstOwn)
        problems.push(`timeline ${timeline} branched at ${switchLsn} but its first archived segment is ${segmentName(timeline, firstOwn)}`);
    }
    // This timeline must run without a hole until the next one takes over (or to its newest segment).
    const end = next === undefined ? highest(own) : lowest(segments.get(next) ?? new Set([cursor])) - 1;
    for (let s = begin; s <= end; s += 1) {
      if (own.has(s)) continue;
      problems.push(`${segmentName(timeline, s)} is not archived`);
      missing.push(segmentName(timeline, s));
    }
    if (end >= begin)
      spans.push({
        timeline,
        first: segmentName(timeline, begin),
        last: segmentName(timeline, end),
        history: timeline === 1 || histories.has(timeline),
      });
    cursor = end + 1;
  }
  if (timelines.length === 0) problems.push(`no segment of timeline ${start.timeline} or later is archived`);
  return { ok: problems.length === 0, timelines: spans, problems, missing };
}

// Loops, not Math.min(...set): monitor runs this on whole archives, and a month of WAL at a
// segment a second is more arguments than a call can take.
function lowest(values: ReadonlySet<number>): number {
  let min = Number.POSITIVE_INFINITY;
  for (const v of values) if (v < min) min = v;
  return min;
}

function highest(values: ReadonlySet<number>): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) if (v > max) max = v;
  return max;
}

/** The names of every WAL file archived in a repository (segments, .history, .partial, .backup). */
export async function archivedWalNames(storage: Storage): Promise<string[]> {
  const names: string[] = [];
  for await (const object of storage.list(WAL_PREFIX)) {
    const file = walFileOfKey(object.key);
    if (file) names.push(file.name);
  }
  return names;
}
