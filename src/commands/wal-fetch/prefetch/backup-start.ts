import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseWalFileName, segmentName } from '../../../wal/wal-file-name.js';
import { readWanted, spoolDirectory } from './spool.js';

/**
 * Where a recovery from a base backup starts, for a prefetcher started before PostgreSQL asks for
 * any segment (docs/pitr.md, "The prefetcher's head start").
 *
 * Recovering to the newest timeline, PostgreSQL first asks restore_command for the history file
 * of the next timeline and only then for the segment holding the backup's checkpoint. The
 * wal-fetch answering that first probe can start the prefetcher on the segments recovery will
 * want: backup_label, still in the data directory at that point (PostgreSQL renames it once it
 * read the checkpoint), names the segment the backup started in. Only speed depends on it: a
 * label naming something else fills the spool with segments recovery never takes, which the
 * prefetcher drops on the first real request.
 */

/** The segment named by backup_label's "START WAL LOCATION: 0/4000028 (file 000000010000000000000004)". */
export function backupStartSegment(dataDir: string): string | undefined {
  let label: string;
  try {
    label = readFileSync(join(dataDir, 'backup_label'), 'utf8');
  } catch {
    return undefined;
  }
  const name = /^START WAL LOCATION: [0-9A-F]+\/[0-9A-F]+ \(file ([0-9A-F]{24})\)$/m.exec(label)?.[1];
  const file = name === undefined ? undefined : parseWalFileName(name);
  return file?.kind === 'segment' ? file.name : undefined;
}

/**
 * The `wanted` mark that makes the prefetcher fetch `start` first: it keeps the segments after
 * the newest one wanted, and recovery from this base backup needs nothing before `start`.
 * Undefined for the very first segment of a timeline's numbering, which no base backup starts in.
 */
export function wantedBefore(start: string): string | undefined {
  const file = parseWalFileName(start);
  if (file?.kind !== 'segment' || file.segment === 0) return undefined;
  return segmentName(file.timeline, file.segment - 1);
}

/**
 * Starts the prefetcher on the base backup's first segment, for the history probe that opens a
 * recovery: only while backup_label is there and before any request (no `wanted` mark in this
 * spool). Returns whether it marked and started. Throws what marking or starting threw: only
 * speed depends on it, and each caller says so its own way.
 */
export async function startAtBackupStart(dataDir: string, systemIdentifier: string, allowUnsigned: boolean): Promise<boolean> {
  const start = backupStartSegment(dataDir);
  const before = start === undefined ? undefined : wantedBefore(start);
  if (before === undefined) return false;
  if (readWanted(spoolDirectory(dataDir, systemIdentifier, allowUnsigned)) !== undefined) return false;
  const { ensurePrefetcher } = await import('./start-prefetcher.js');
  await ensurePrefetcher({ dataDir, systemIdentifier, allowUnsigned, wanted: before });
  return true;
}
