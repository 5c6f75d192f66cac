import { type FSWatcher, closeSync, existsSync, lstatSync, openSync, readSync, readdirSync, rmSync, statSync, watch } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { NATIVE_ZSTD, type SegmentZstd } from '../../../compression/zstd.js';
import type { DecryptionKeys } from '../../../crypto/keys.js';
import { SpawnRelay } from '../../../process/spawn-relay.js';
import type { ReaderTrust } from '../../../pipeline/open-encrypted.js';
import type { Storage } from '../../../storage/storage.js';
import { WAL_SEGMENT_BYTES, parseWalFileName, segmentName } from '../../../wal/wal-file-name.js';
import { fetchWalFile } from '../fetch-wal-file.js';
import { postmasterOfDataDirSync } from '../../../wal/file-identity.js';
import {
  SPOOL_STALE_MS,
  claimFetch,
  isOwnClaim,
  isTemporary,
  isUsedNoteSize,
  parseNoteName,
  publishSegment,
  readWanted,
  spoolRoot,
} from './spool.js';

export interface PrefetcherOptions {
  readonly storage: Storage;
  readonly keys: DecryptionKeys;
  readonly trust: ReaderTrust;
  readonly dataDir: string;
  /** This system's spool directory (spoolDirectory()). */
  readonly directory: string;
  readonly systemIdentifier: string;
  /** Segments to keep spooled ahead of the last one recovery took (BACKUP_WAL_PREFETCH). */
  readonly depth: number;
  /** Spooled plus in-flight bytes never exceed this (BACKUP_WAL_PREFETCH_MAX_BYTES). */
  readonly maxBytes: number;
  /** Segments fetched at once. */
  readonly concurrency?: number;
  /** Exit after this long without recovery taking a segment. */
  readonly idleMs?: number;
  readonly log?: (line: string) => void;
  readonly signal?: AbortSignal;
  /**
   * A claim this process made before loading its keys (spool.ts claimFetch), on the segment after
   * the `wanted` mark it found: adopted by the fetch of that segment, removed if none starts.
   */
  readonly headClaim?: { readonly name: string; readonly path: string };
}

export interface PrefetcherOutcome {
  readonly fetched: number;
  /** Of those, published as pg_wal/<name> with a note (spool.ts), rather than left in the spool. */
  readonly published: number;
  readonly failed: number;
  /** server-stopped: the postmaster this prefetcher first saw in postmaster.pid is gone. */
  readonly reason: 'idle' | 'recovery-ended' | 'aborted' | 'server-stopped';
}

/**
 * The background half of wal-fetch: keeps segments N+1..N+depth fetched, verified (fetchWalFile:
 * every check a wal-fetch makes) and decompressed in the spool, where N is the newest segment
 * recovery asked for (the `wanted` file) or took from the spool (an entry disappeared). Runs
 * until recovery ends (the spool is removed) or nothing was taken for idleMs. A segment that
 * fails a check is logged and left out: recovery's own wal-fetch of it then fails with the
 * reason (exit 200), so a tampered object can stop recovery but never enter the spool.
 */
export async function runPrefetcher(options: PrefetcherOptions): Promise<PrefetcherOutcome> {
  const concurrency = options.concurrency ?? 3;
  const idleMs = options.idleMs ?? 30_000;
  const log = options.log ?? (() => undefined);
  const inFlight = new Map<number, Promise<void>>();
  const failed = new Set<number>();
  /** Segments this process put in the spool and has not seen taken yet. */
  const spooled = new Set<number>();
  /** Segments published in place, by their note's entry, whose note recovery has not used yet. */
  const published = new Map<number, string>();
  let publishedCount = 0;
  let timeline: number | undefined;
  let base = -1;
  let lastWanted: number | undefined;
  let endOfArchive: number | undefined;
  let lastProgress = Date.now();
  let promotedAt: number | undefined;
  let fetched = 0;
  let warm = false;
  /** Claims on segments being fetched, by name (spool.ts claimFetch). */
  const claims = new Map<string, string>();
  if (options.headClaim) claims.set(options.headClaim.name, options.headClaim.path);
  const release = (name: string) => {
    const path = claims.get(name);
    claims.delete(name);
    if (path !== undefined) rmSync(path, { force: true });
  };
  let wake: (() => void) | undefined;
  const nudge = () => wake?.();
  /** The server run this prefetcher works for, once postmaster.pid names a live one. */
  let server: string | undefined;
  // Aborts the fetches in flight when the server is gone: nobody will read them, and their claims
  // would otherwise outlive the server by a request timeout.
  const stopping = new AbortController();
  const fetchSignal = options.signal ? AbortSignal.any([options.signal, stopping.signal]) : stopping.signal;
  let watcher: FSWatcher | undefined;
  try {
    // Entries appearing and disappearing ('rename'), a file being fetched growing ('change'),
    // and a note marked used by restore_command's shell ('change').
    watcher = watch(options.directory, () => nudge());
    watcher.on('error', () => undefined);
  } catch {
    // Polling below still notices everything, only later.
  }
  removeLeftovers(options.directory);
  // Node 20: zstd through a relay, so this process never forks per segment (process/spawn-relay.ts).
  const relay = NATIVE_ZSTD ? undefined : new SpawnRelay();
  const zstd: SegmentZstd | undefined = relay ? { relay, scratchDir: options.directory } : undefined;
  try {
    for (;;) {
      if (options.signal?.aborted) return { fetched, published: publishedCount, failed: failed.size, reason: 'aborted' };
      const running = liveServer(options.dataDir);
      if (running !== undefined) server ??= running;
      else if (server !== undefined) {
        // The server stopped (restore_command failed for good, or it was shut down) or died. What
        // is spooled stays for its next start; a new server run starts its own prefetcher.
        stopping.abort(new Error('the server stopped'));
        log(`the server ${server} stopped: the prefetcher stops`);
        return { fetched, published: publishedCount, failed: failed.size, reason: 'server-stopped' };
      }
      if (!existsSync(spoolRoot(options.dataDir)) || !existsSync(options.directory))
        return { fetched, published: publishedCount, failed: failed.size, reason: 'recovery-ended' };
      if (recoveryEnded(options.dataDir)) {
        // Recovery ended. recovery_end_command (wal-prefetch clean) normally stops us and removes
        // the spool; a hand-written configuration without it must not leave segments in pg_wal.
        promotedAt ??= Date.now();
        if (Date.now() - promotedAt > END_GRACE_MS) {
          rmSync(spoolRoot(options.dataDir), { recursive: true, force: true });
          return { fetched, published: publishedCount, failed: failed.size, reason: 'recovery-ended' };
        }
      }
      const wanted = parseWalFileName(readWanted(options.directory) ?? '');
      if (wanted?.kind === 'segment' && wanted.timeline !== timeline) {
        // A new timeline (or the first request): what was spooled for another one is useless.
        timeline = wanted.timeline;
        base = -1;
        lastWanted = undefined;
        spooled.clear();
        published.clear();
        failed.clear();
        endOfArchive = undefined;
      }
      if (timeline === undefined) {
        if (Date.now() - lastProgress > idleMs) return { fetched, published: publishedCount, failed: failed.size, reason: 'idle' };
        await sleep(100);
        continue;
      }
      const present = new Map<number, string>();
      /** Notes of published segments in the spool directory, by segment: entry name and whether recovery used it. */
      const notes = new Map<
        number,
        { readonly entry: string; readonly used: boolean; readonly timeline: number; readonly postmaster: string }
      >();
      for (const entry of safeReaddir(options.directory)) {
        const file = parseWalFileName(entry);
        if (file?.kind === 'segment') {
          present.set(file.segment, entry);
          continue;
        }
        const note = parseNoteName(entry);
        const noted = note === undefined ? undefined : parseWalFileName(note.name);
        if (note === undefined || noted?.kind !== 'segment') continue;
        const size = lstatSync(join(options.directory, entry), { throwIfNoEntry: false })?.size;
        if (size === undefined) continue;
        notes.set(noted.segment, { entry, used: isUsedNoteSize(size), timeline: noted.timeline, postmaster: note.postmaster });
      }
      // The newest note recovery used: kept even once a request for the segment after it (the
      // miss at the end of the archive) moved the window on.
      let newestUsed = -1;
      for (const [segment, note] of notes) if (note.used && note.timeline === timeline && segment > newestUsed) newestUsed = segment;
      let advanced = false;
      if (wanted?.kind === 'segment' && wanted.segment !== lastWanted) {
        // A new request. Usually the next segment; an earlier one means recovery restarted from a
        // restartpoint, and the window starts over from there (what is spooled beyond it stays).
        lastWanted = wanted.segment;
        base = wanted.segment;
        advanced = true;
      }
      const taken = (segment: number) => {
        if (segment > base) {
          base = segment;
          advanced = true;
        }
      };
      for (const segment of spooled) {
        if (present.has(segment) || inFlight.has(segment) || published.has(segment)) continue;
        spooled.delete(segment);
        // Gone without us removing it: recovery took it (a rename onto %p).
        taken(segment);
      }
      for (const [segment, entry] of published) {
        const note = notes.get(segment);
        if (note !== undefined && note.entry === entry && !note.used) continue;
        // Emptied by restore_command (PostgreSQL read pg_wal/<name>) or by wal-fetch taking it.
        published.delete(segment);
        taken(segment);
      }
      if (advanced) {
        lastProgress = Date.now();
        endOfArchive = undefined;
      }
      const now = Date.now();
      for (const [segment, entry] of present) {
        const file = parseWalFileName(entry);
        const stale = now - (statSync(join(options.directory, entry), { throwIfNoEntry: false })?.mtimeMs ?? now) > SPOOL_STALE_MS;
        if (segment <= base || file?.kind !== 'segment' || file.timeline !== timeline || stale) {
          rmSync(join(options.directory, entry), { force: true });
          present.delete(segment);
          spooled.delete(segment);
        } else if (!spooled.has(segment)) {
          // Spooled by an earlier prefetcher (recovery restarted): ours to track now.
          spooled.add(segment);
        }
      }
      const postmaster = postmasterOfDataDirSync(options.dataDir);
      for (const [segment, note] of notes) {
        // A note behind recovery, or of another timeline or server run, has done its work or never
        // will; the newest one recovery took stays, used, for PostgreSQL's re-read of the last
        // segment before it promotes (spool.ts USED_NOTE). Only the note goes: the published file
        // is PostgreSQL's from the moment the shell may have answered for it (restartpoints and
        // promotion remove such files), so it is never deleted under a recovery that might be
        // about to open it.
        if (note.timeline !== timeline || note.postmaster !== postmaster || (note.used ? segment !== newestUsed : segment <= base)) {
          rmSync(join(options.directory, note.entry), { force: true });
          notes.delete(segment);
          if (published.get(segment) === note.entry) published.delete(segment);
        } else if (!note.used && !published.has(segment)) {
          // Published by an earlier prefetcher of this server run (it went idle): ours to track now.
          published.set(segment, note.entry);
        }
      }
      for (let segment = base + 1; segment <= base + options.depth; segment += 1) {
        // The first fetch runs alone: recovery is waiting for it, and on 2 cores two more beside
        // it would only delay it.
        if (inFlight.size >= (warm ? concurrency : 1)) break;
        if (endOfArchive !== undefined && segment >= endOfArchive) break;
        if ((present.size + notes.size + inFlight.size + 1) * WAL_SEGMENT_BYTES > options.maxBytes) break;
        if (present.has(segment) || notes.has(segment) || inFlight.has(segment) || failed.has(segment)) continue;
        const tl = timeline;
        const name = segmentName(tl, segment);
        if (!claims.has(name)) {
          try {
            claims.set(name, claimFetch(options.directory, name));
          } catch {
            // Without a claim the shell starts wal-fetch for it, which is only slower.
          }
        }
        const job = fetchWalFile({
          storage: options.storage,
          keys: options.keys,
          trust: options.trust,
          name,
          destination: join(options.directory, name),
          systemIdentifier: options.systemIdentifier,
          zstd,
          signal: fetchSignal,
        })
          .then((result) => {
            if (result.outcome === 'fetched') {
              fetched += 1;
              if (tl !== timeline || stopping.signal.aborted) return;
              let note: string | undefined;
              try {
                note = publishSegment(options.dataDir, options.directory, name);
              } catch (error) {
                // Left in the spool (or already taken from it by wal-fetch): served the old way.
                log(`publishing ${name} in pg_wal failed, left in the spool: ${(error as Error).message ?? String(error)}`);
              }
              if (note === undefined) spooled.add(segment);
              else {
                published.set(segment, note);
                publishedCount += 1;
              }
            } else endOfArchive = Math.min(endOfArchive ?? segment, segment);
          })
          .catch((error: unknown) => {
            failed.add(segment);
            if (!stopping.signal.aborted)
              log(`prefetch of ${name} failed, left to wal-fetch: ${(error as Error).message ?? String(error)}`);
          })
          .finally(() => {
            warm = true;
            inFlight.delete(segment);
            release(name);
            nudge();
          });
        inFlight.set(segment, job);
      }
      // The head claim, when recovery moved on before its fetch started.
      for (const name of [...claims.keys()]) {
        const claimed = parseWalFileName(name);
        if (claimed?.kind !== 'segment' || claimed.timeline !== timeline || !inFlight.has(claimed.segment)) release(name);
      }
      if (inFlight.size === 0 && Date.now() - lastProgress > idleMs)
        return { fetched, published: publishedCount, failed: failed.size, reason: 'idle' };
      await new Promise<void>((resolve) => {
        wake = resolve;
        void sleep(inFlight.size === 0 ? 200 : 100).then(resolve);
      });
      wake = undefined;
    }
  } finally {
    watcher?.close();
    await Promise.allSettled(inFlight.values());
    for (const name of [...claims.keys()]) release(name);
    relay?.close();
  }
}

/**
 * `<pid>-<start time>` of the postmaster postmaster.pid names, if that process is alive: a server
 * killed outright leaves its postmaster.pid behind.
 */
function liveServer(dataDir: string): string | undefined {
  const postmaster = postmasterOfDataDirSync(dataDir);
  const pid = Number(postmaster?.split('-')[0]);
  if (postmaster === undefined || !Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: alive, as another user.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
  }
  return postmaster;
}

/** DBState DB_IN_PRODUCTION (PostgreSQL 15, src/include/catalog/pg_control.h). */
const DB_IN_PRODUCTION = 6;
const END_GRACE_MS = 5_000;

/**
 * Whether the server left recovery: ControlFileData.state (uint32 at offset 16, after the
 * system identifier, pg_control_version and catalog_version_no) says "in production", and
 * backup_label is gone. A base backup's pg_control is the primary's, in production, until
 * PostgreSQL has read the backup's checkpoint (and then renames backup_label); a prefetcher started
 * by the first probe of a recovery (prefetch/backup-start.ts) sees that copy first.
 */
function recoveryEnded(dataDir: string): boolean {
  if (existsSync(join(dataDir, 'backup_label'))) return false;
  try {
    const fd = openSync(join(dataDir, 'global', 'pg_control'), 'r');
    try {
      const buffer = Buffer.alloc(20);
      return readSync(fd, buffer, 0, 20, 0) === 20 && buffer.readUInt32LE(16) === DB_IN_PRODUCTION;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

function safeReaddir(directory: string): string[] {
  try {
    return readdirSync(directory);
  } catch {
    return [];
  }
}

/** Temporary files and claims of a prefetcher that was killed mid-fetch: never complete, never served. */
function removeLeftovers(directory: string): void {
  for (const entry of safeReaddir(directory)) {
    if (isTemporary(entry) && !entry.includes('-wanted-') && !isOwnClaim(entry)) rmSync(join(directory, entry), { force: true });
  }
}
