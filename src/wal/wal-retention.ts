import type { Storage } from '../storage/storage.js';
import { parseWalFileName } from './wal-file-name.js';
import { WAL_PREFIX, walFileOfKey } from '../repository/wal-layout.js';

export interface PruneWalOptions {
  /** The start segment of the oldest retained base backup: nothing from it onwards is touched. */
  readonly keepFromSegment: string;
  readonly dryRun?: boolean;
}

/**
 * Deletes archived WAL older than `keepFromSegment` on every timeline: segments, partials and
 * backup history files. Timeline history files and wal/system.json are always kept (they are
 * tiny and recovery needs every history file to follow timeline switches). Returns the keys
 * deleted (or that would be, with dryRun).
 */
export async function pruneWal(storage: Storage, options: PruneWalOptions): Promise<string[]> {
  const keep = parseWalFileName(options.keepFromSegment);
  if (keep?.kind !== 'segment') throw new RangeError(`keepFromSegment must be a WAL segment name, not ${options.keepFromSegment}`);
  const doomed: string[] = [];
  for await (const object of storage.list(WAL_PREFIX)) {
    const file = walFileOfKey(object.key);
    if (file === undefined || file.kind === 'history') continue;
    if (file.segment < keep.segment) doomed.push(object.key);
  }
  if (!options.dryRun) for (const key of doomed) await storage.delete(key);
  return doomed;
}
