/**
 * The names PostgreSQL gives the files it archives, and the arithmetic on them. Segment sizes
 * other than the default 16 MiB are not supported (PostgreSQL's own default; the name → number
 * mapping depends on it), and are refused where it matters (see wal-page-header.ts).
 */
export const WAL_SEGMENT_BYTES = 16 * 1024 * 1024;
/** Segments per "log file" (the middle 8 hex digits): 4 GiB / segment size. */
const SEGMENTS_PER_LOG = 0x1_0000_0000 / WAL_SEGMENT_BYTES;

export type WalFile =
  | { readonly kind: 'segment'; readonly name: string; readonly timeline: number; readonly segment: number }
  | { readonly kind: 'partial'; readonly name: string; readonly timeline: number; readonly segment: number }
  | { readonly kind: 'backup-history'; readonly name: string; readonly timeline: number; readonly segment: number }
  | { readonly kind: 'history'; readonly name: string; readonly timeline: number };

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;
const PARTIAL = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.partial$/;
const BACKUP_HISTORY = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.[0-9A-F]{8}\.backup$/;
const HISTORY = /^([0-9A-F]{8})\.history$/;

/**
 * Classifies an archived file name, or undefined for anything PostgreSQL would not archive:
 * timeline 0 (timelines start at 1), or a low part above FF, which 16 MiB segments never reach
 * and which would otherwise alias another segment (...000001FF would count as ...00000001000000FF).
 */
export function parseWalFileName(name: string): WalFile | undefined {
  let m = SEGMENT.exec(name) ?? PARTIAL.exec(name) ?? BACKUP_HISTORY.exec(name);
  if (m) {
    const timeline = hex(m[1]);
    const low = hex(m[3]);
    if (timeline === 0 || low >= SEGMENTS_PER_LOG) return undefined;
    const segment = hex(m[2]) * SEGMENTS_PER_LOG + low;
    const kind = name.endsWith('.partial') ? 'partial' : name.endsWith('.backup') ? 'backup-history' : 'segment';
    return { kind, name, timeline, segment };
  }
  m = HISTORY.exec(name);
  if (m && hex(m[1]) !== 0) return { kind: 'history', name, timeline: hex(m[1]) };
  return undefined;
}

function hex(value: string | undefined): number {
  return Number.parseInt(value ?? '', 16);
}

export function hex8(value: number): string {
  return value.toString(16).toUpperCase().padStart(8, '0');
}

/** 000000010000000000000003 from timeline 1, segment number 3. */
export function segmentName(timeline: number, segment: number): string {
  return `${hex8(timeline)}${hex8(Math.floor(segment / SEGMENTS_PER_LOG))}${hex8(segment % SEGMENTS_PER_LOG)}`;
}

/** "0/3000028" → byte position. BigInt because LSNs exceed 2^53 on long-lived systems. */
export function parseLsn(lsn: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!m) throw new RangeError(`not an LSN: ${lsn}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(position: bigint): string {
  return `${(position >> 32n).toString(16).toUpperCase()}/${(position & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** The segment holding the byte at `lsn` (XLByteToSeg). */
export function segmentOfLsn(lsn: string): number {
  return Number(parseLsn(lsn) / BigInt(WAL_SEGMENT_BYTES));
}

/**
 * The segment holding the last byte before `lsn` (XLByteToPrevSeg): the stop segment of a base
 * backup, the one PostgreSQL itself waits to see archived.
 */
export function segmentBeforeLsn(lsn: string): number {
  return Number((parseLsn(lsn) - 1n) / BigInt(WAL_SEGMENT_BYTES));
}
