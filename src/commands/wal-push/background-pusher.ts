import { type FSWatcher, watch } from 'node:fs';
import { stat } from 'node:fs/promises';
import { type Server, type Socket, createServer } from 'node:net';
import { join } from 'node:path';
import { type PmsError, isPmsError } from '../../errors/catalogue.js';
import { type ArchiveBacklog, archiveBacklog, readyFiles } from '../../wal/archive-status.js';
import { parseWalFileName } from '../../wal/wal-file-name.js';
import {
  type FileIdentity,
  claimPusherPid,
  clearInFlight,
  dropProofLink,
  fileIdentity,
  hasValidMarker,
  linkForProof,
  noteInFlight,
  postmasterOf,
  releasePusherPid,
  removeStaleMarkers,
  sameFile,
  writePushMarker,
} from './push-marker.js';
import { type WalPushContext, pushWalFile } from './push-wal-file.js';
import { type PusherReply, onLines } from './pusher-socket.js';

/**
 * The background pusher (pgBackRest's archive-async, without its queue-max that drops WAL): one
 * resident process per pg_wal directory that archives every .ready file, `concurrency` at once,
 * oldest first, and answers `wal-push` as each is durably stored. It pays Node's start-up, the
 * key load and the storage client once for many segments instead of once per segment.
 *
 * What it never does: tell anyone a file is archived before the store confirmed it (the marker
 * is written after the PUT, and wal-push believes only the marker), touch archive_status (only
 * PostgreSQL marks a file .done, after wal-push exited 0), or give up on a file: a failing file
 * stays .ready, every wal-push for it fails with the reason, and the backlog metric grows.
 *
 * It leaves when the server it serves is gone or restarted (postmaster.pid), after IDLE_MS with
 * nothing to archive, or after MAX_LIFE_MS (then the next wal-push starts a fresh one, which
 * reads rotated keys and a changed environment).
 */
export interface PusherOptions {
  readonly walDir: string;
  readonly context: WalPushContext;
  /** .ready files considered ahead of PostgreSQL at once. */
  readonly readAhead: number;
  /** Files archived at once. */
  readonly concurrency: number;
  readonly idleMs?: number;
  readonly maxLifeMs?: number;
  /** Told the backlog at start, every BACKLOG_REPORT_MS and when leaving (the archive-backlog metric). */
  readonly onBacklog?: (backlog: ArchiveBacklog) => Promise<void>;
}

export const BACKLOG_REPORT_MS = 15_000;

export const IDLE_MS = 30_000;
export const MAX_LIFE_MS = 10 * 60_000;
/** Longest pause of read-ahead after failures (a request from wal-push always tries at once). */
const MAX_BACKOFF_MS = 30_000;

interface Job {
  readonly name: string;
  readonly done: Promise<PusherReply>;
  resolve(reply: PusherReply): void;
  /** The in-flight hold for archive_command's shell (push-marker.ts IN_FLIGHT_PREFIX), from the job's start. */
  held?: Promise<void>;
}

function replyFor(error: unknown): PusherReply {
  const pms = isPmsError(error) ? error : undefined;
  return {
    ok: false,
    code: pms?.code ?? 'PMS_ERR_INTERNAL',
    message: pms?.message ?? (error instanceof Error ? error.message : String(error)),
    exitCode: (pms as PmsError | undefined)?.exitCode ?? 70,
  };
}

export class BackgroundPusher {
  readonly #options: PusherOptions;
  readonly #jobs = new Map<string, Job>();
  readonly #queue: Job[] = [];
  #running = 0;
  #failures = 0;
  #pausedUntil = 0;
  #lastWork = Date.now();
  readonly #started = Date.now();
  #stopping = false;
  #scanning: Promise<void> | undefined;
  #rescan = false;
  /**
   * Files this pusher archived, as they were read: PostgreSQL's wal-push consumes the marker a
   * moment before it renames .ready to .done, and a scan in between must not archive them again.
   */
  readonly #archived = new Map<string, FileIdentity>();
  /** Counts for the report at exit and the tests. */
  readonly stats = { stored: 0, alreadyArchived: 0, failed: 0 };

  constructor(options: PusherOptions) {
    this.#options = options;
  }

  /** True while `name` is queued or being archived here (its proof link is being made or read). */
  holds(name: string): boolean {
    return this.#jobs.has(name);
  }

  get busy(): boolean {
    return this.#running > 0 || this.#queue.length > 0;
  }

  /** A wal-push asks for `name`: it goes first, and failures do not hold it back. */
  request(name: string): Promise<PusherReply> {
    const file = parseWalFileName(name);
    if (file === undefined || name.includes('/')) {
      return Promise.resolve({ ok: false, code: 'PMS_ERR_USAGE', message: `${name} is not a WAL file name`, exitCode: 64 });
    }
    return this.#schedule(name, true).done;
  }

  #schedule(name: string, first: boolean): Job {
    const existing = this.#jobs.get(name);
    if (existing !== undefined) {
      const queued = this.#queue.indexOf(existing);
      if (first && queued > 0) this.#queue.unshift(...this.#queue.splice(queued, 1));
      return existing;
    }
    let resolve!: (reply: PusherReply) => void;
    const done = new Promise<PusherReply>((r) => (resolve = r));
    const job: Job = { name, done, resolve };
    this.#jobs.set(name, job);
    if (first) this.#queue.unshift(job);
    else this.#queue.push(job);
    this.#pump();
    return job;
  }

  #pump(): void {
    while (this.#running < this.#options.concurrency && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      this.#running += 1;
      // Held only while archived, not while queued: a queued file the shell asks for goes to Node,
      // whose request moves it to the front. A hint only: failing to write it costs a Node start.
      job.held = noteInFlight(this.#options.walDir, job.name).catch(() => undefined);
      void this.#archive(job).then(async (reply) => {
        // The note (on success) is written by now, so a shell that sees the hold gone finds it.
        await this.#release(job);
        this.#running -= 1;
        this.#jobs.delete(job.name);
        this.#lastWork = Date.now();
        job.resolve(reply);
        this.#pump();
        this.scan();
      });
    }
  }

  async #release(job: Job): Promise<void> {
    if (job.held === undefined) return;
    await job.held;
    await clearInFlight(this.#options.walDir, job.name);
  }

  async #archive(job: Job): Promise<PusherReply> {
    const path = join(this.#options.walDir, job.name);
    try {
      // Archived earlier and not yet asked for (a pusher restarted, or two asks crossed).
      if ((await hasValidMarker(path)) === true) return { ok: true };
      await linkForProof(path);
      const pushed = await pushWalFile(this.#options.context, path);
      // Only now, with the object stored: the marker is what makes wal-push exit 0.
      await writePushMarker(path, pushed.sha256, pushed.identity);
      this.#archived.set(job.name, pushed.identity);
      if (pushed.outcome === 'stored') this.stats.stored += 1;
      else this.stats.alreadyArchived += 1;
      this.#failures = 0;
      return { ok: true };
    } catch (error) {
      await dropProofLink(path);
      this.stats.failed += 1;
      if (!isPmsError(error, 'PMS_ERR_NOT_FOUND')) {
        this.#failures += 1;
        this.#pausedUntil = Date.now() + Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(this.#failures, 10));
      }
      return replyFor(error);
    }
  }

  /** Queues .ready files that have no marker yet, up to the read-ahead window. */
  scan(): void {
    if (this.#stopping) return;
    if (this.#scanning) {
      this.#rescan = true;
      return;
    }
    this.#scanning = (async () => {
      do {
        this.#rescan = false;
        if (Date.now() < this.#pausedUntil) break;
        const names = await readyFiles(this.#options.walDir).catch(() => [] as string[]);
        const ready = new Set(names);
        for (const name of this.#archived.keys()) if (!ready.has(name)) this.#archived.delete(name);
        let window = this.#options.readAhead - this.#jobs.size;
        for (const name of names) {
          if (window <= 0) break;
          if (this.#jobs.has(name)) continue;
          const archived = this.#archived.get(name);
          if (archived !== undefined && (await this.#unchanged(name, archived))) continue;
          if ((await hasValidMarker(join(this.#options.walDir, name))) === true) continue;
          this.#schedule(name, false);
          window -= 1;
        }
      } while (this.#rescan && !this.#stopping);
    })().finally(() => (this.#scanning = undefined));
  }

  async #unchanged(name: string, identity: FileIdentity): Promise<boolean> {
    const now = await stat(join(this.#options.walDir, name), { bigint: true }).then(fileIdentity, () => undefined);
    return now !== undefined && sameFile(now, identity);
  }

  /** Why the pusher should leave now, if it should. */
  async shouldLeave(instance: string): Promise<string | undefined> {
    if ((await postmasterOf(this.#options.walDir)) !== instance) return 'the server stopped or restarted';
    if (this.busy) return undefined;
    if (Date.now() - this.#lastWork > (this.#options.idleMs ?? IDLE_MS)) return 'idle';
    if (Date.now() - this.#started > (this.#options.maxLifeMs ?? MAX_LIFE_MS)) return 'lifetime reached';
    return undefined;
  }

  /** Stops taking work and waits for what is in flight: a file started is finished or failed, never cut. */
  async drain(): Promise<void> {
    this.#stopping = true;
    for (const job of this.#queue.splice(0)) {
      this.#jobs.delete(job.name);
      job.resolve({ ok: false, code: 'PMS_ERR_ABORTED', message: 'the background pusher is leaving; retry', exitCode: 1 });
    }
    while (this.#running > 0) await Promise.all([...this.#jobs.values()].map((j) => j.done));
    await removeStaleMarkers(this.#options.walDir, (n) => parseWalFileName(n) !== undefined).catch(() => undefined);
  }
}

/**
 * Serves `address` until the pusher leaves. Resolves with the reason. `onListening` runs once
 * the address is held (the lock), before any request is served.
 */
export async function servePusher(
  pusher: BackgroundPusher,
  address: string,
  walDir: string,
  onListening: () => void,
  options: Pick<PusherOptions, 'onBacklog'> = {},
): Promise<string> {
  const instance = await postmasterOf(walDir);
  if (instance === undefined) return 'no server runs in this data directory';
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onLines(socket, (line) => {
      void pusher.request(line.trim()).then((reply) => {
        if (!socket.destroyed) socket.end(`${JSON.stringify(reply)}\n`);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // The shell's cue that a held file is worth waiting for (push-marker.ts PUSHER_PID_FILE).
  await claimPusherPid(walDir, instance).catch(() => undefined);
  onListening();
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(join(walDir, 'archive_status'), () => pusher.scan());
    watcher.on('error', () => undefined);
  } catch {
    // No inotify: the periodic scan below still finds new files.
  }
  pusher.scan();
  const report = (): Promise<void> =>
    archiveBacklog(walDir).then(
      (backlog) => options.onBacklog?.(backlog),
      () => undefined,
    );
  let reported = Date.now();
  await report();
  let reason: string | undefined;
  while (reason === undefined) {
    await new Promise((r) => setTimeout(r, 1000));
    pusher.scan();
    if (Date.now() - reported >= BACKLOG_REPORT_MS) {
      reported = Date.now();
      await report();
      // Notes the shell emptied (used) and notes of recycled files.
      await removeStaleMarkers(
        walDir,
        (n) => parseWalFileName(n) !== undefined,
        (n) => pusher.holds(n),
      ).catch(() => undefined);
    }
    reason = await pusher.shouldLeave(instance);
  }
  watcher?.close();
  // New connections now fail, so the next wal-push starts a fresh pusher; answered ones finish.
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await pusher.drain();
  await releasePusherPid(walDir);
  for (const socket of sockets) socket.destroy();
  await report();
  return reason;
}
