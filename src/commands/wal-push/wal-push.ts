import { dirname, join, resolve } from 'node:path';
import { isPmsError } from '../../errors/catalogue.js';
import { readyFiles } from '../../wal/archive-status.js';
import { type PushedWalFile, type WalPushContext, pushWalFile } from './push-wal-file.js';
import { hasValidMarker, linkForProof, removeStaleMarkers, writePushMarker } from './push-marker.js';
import { parseWalFileName } from '../../wal/wal-file-name.js';

export interface ArchiveWalOptions extends WalPushContext {
  /** %p: the file PostgreSQL asks us to archive, relative to the data directory. */
  readonly path: string;
  /** Other .ready files archived ahead in the same run (0 disables); default 32. */
  readonly readAhead?: number;
  /** Files archived at once; default 2 (this machine class has 2 cores). */
  readonly concurrency?: number;
}

export interface ArchiveWalResult {
  readonly requested: PushedWalFile;
  readonly ahead: readonly PushedWalFile[];
  /** Why archiving ahead stopped early, if it did (the requested file is archived regardless). */
  readonly aheadProblem?: string;
}

/**
 * archive_command in one process (a manual run, or --no-background): archives the requested
 * file, then other files PostgreSQL has marked .ready (as WAL-G does), because starting this
 * program costs far more than archiving one segment. Files archived ahead get a local note so
 * PostgreSQL's own call for them returns at once. With a server running, the background pusher
 * (background-pusher.ts) does this instead, across calls.
 */
export async function archiveWal(options: ArchiveWalOptions): Promise<ArchiveWalResult> {
  const context: WalPushContext = { ...options, claims: options.claims ?? new Map() };
  const requested = await pushWalFile(context, options.path);
  const walDir = dirname(resolve(options.path));
  const limit = options.readAhead ?? 32;
  if (limit <= 0) return { requested, ahead: [] };
  const ready = (await readyFiles(walDir)).filter((name) => name !== requested.name).slice(0, limit);
  const ahead: PushedWalFile[] = [];
  let aheadProblem: string | undefined;
  const queue = [...ready];
  const worker = async (): Promise<void> => {
    for (let name = queue.shift(); name !== undefined && aheadProblem === undefined; name = queue.shift()) {
      const path = join(walDir, name);
      try {
        // A note the pusher wrote still vouches; linking again would move the file's ctime under it.
        if (await hasValidMarker(path)) continue;
        await linkForProof(path);
        const pushed = await pushWalFile(context, path);
        await writePushMarker(path, pushed.sha256, pushed.identity);
        ahead.push(pushed);
      } catch (error) {
        // PostgreSQL will ask for this file itself and then see the error; never fail the
        // requested file, which is safely archived, because of a file archived ahead.
        if (isPmsError(error, 'PMS_ERR_NOT_FOUND')) continue; // archived and removed meanwhile
        aheadProblem = isPmsError(error) ? `${error.code}: ${error.message}` : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 2) }, worker));
  await removeStaleMarkers(walDir, (n) => parseWalFileName(n) !== undefined).catch(() => undefined);
  return { requested, ahead, ...(aheadProblem === undefined ? {} : { aheadProblem }) };
}
