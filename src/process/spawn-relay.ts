import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { PmsError } from '../errors/catalogue.js';
import { childEnv } from './child-env.js';

/**
 * Starts short programs (zstd, once per WAL segment) on behalf of a long-running process, from a
 * small resident Node process instead of from the big one.
 *
 * Why: spawning forks the caller, and after a fork every page the caller writes is first a
 * copy-on-write fault. On this project's VMs (Firecracker) such a fault costs ~40 µs, and the
 * background pusher writes ~50 MB per segment after its zstd fork (openpgp.js's copies of the
 * message): measured, encrypting one compressed segment took 54 ms of CPU without a fork in the
 * loop and ~250 ms with any spawn per segment, even of `true` (docs/performance.md). The relay
 * holds a few MB, so its forks cost next to nothing, and the pusher and the prefetcher never fork.
 *
 * Programs get the relay's environment, which is childEnv(): the same allowlist as startTool.
 * Programs talk through files only (no stdin/stdout): the caller names its input and output paths.
 */
export interface RelayResult {
  readonly stderr: string;
}

interface Pending {
  readonly name: string;
  resolve(result: RelayResult): void;
  reject(error: unknown): void;
}

export class SpawnRelay {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, Pending>();
  #next = 1;
  #gone: Error | undefined;

  constructor() {
    const main = fileURLToPath(new URL('./spawn-relay-main.js', import.meta.url));
    this.#child = spawn(process.execPath, [main], { stdio: ['pipe', 'pipe', 'ignore'], env: childEnv() });
    this.#child.stdin?.on('error', () => undefined);
    this.#hold(false);
    createInterface({ input: this.#child.stdout! }).on('line', (line) => this.#answer(line));
    const fail = (error: Error): void => {
      this.#gone ??= error;
      for (const pending of this.#pending.values()) pending.reject(this.#failure(pending.name, error.message));
      this.#pending.clear();
    };
    this.#child.once('error', fail);
    this.#child.once('exit', (code, signal) => fail(new Error(`the spawn relay exited (${signal ?? code})`)));
  }

  /** Runs `command args` to completion; rejects like startTool (PMS_ERR_TOOL_FAILED with stderr, PMS_ERR_ABORTED). */
  run(command: string, args: readonly string[], options: { signal?: AbortSignal } = {}): Promise<RelayResult> {
    const name = command.split('/').pop() ?? command;
    if (this.#gone) return Promise.reject(this.#failure(name, this.#gone.message));
    if (options.signal?.aborted) return Promise.reject(aborted(name, options.signal.reason));
    const id = this.#next++;
    return new Promise<RelayResult>((resolve, reject) => {
      const onAbort = (): void => {
        this.#child.stdin?.write(`${JSON.stringify({ id, kill: true })}\n`);
        this.#pending.delete(id);
        if (this.#pending.size === 0) this.#hold(false);
        reject(aborted(name, options.signal?.reason));
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, {
        name,
        resolve: (result) => {
          options.signal?.removeEventListener('abort', onAbort);
          resolve(result);
        },
        reject: (error) => {
          options.signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      });
      this.#hold(true);
      this.#child.stdin?.write(`${JSON.stringify({ id, command, args })}\n`);
    });
  }

  /** The relay keeps its owner alive only while a program runs for it (an idle relay must not). */
  #hold(busy: boolean): void {
    const handles = [this.#child, this.#child.stdout, this.#child.stdin] as unknown as ({ ref?: () => void; unref?: () => void } | null)[];
    for (const handle of handles) (busy ? handle?.ref : handle?.unref)?.call(handle);
  }

  /** Stops the relay (and anything it still runs). */
  close(): void {
    this.#child.stdin?.end();
  }

  #answer(line: string): void {
    let reply: { id: number; code: number | null; signal: string | null; stderr?: string; error?: string };
    try {
      reply = JSON.parse(line) as typeof reply;
    } catch {
      return;
    }
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return;
    this.#pending.delete(reply.id);
    if (this.#pending.size === 0) this.#hold(false);
    const stderr = reply.stderr ?? '';
    if (reply.error === 'ENOENT') {
      pending.reject(
        new PmsError('PMS_ERR_TOOL_MISSING', `${pending.name} was not found: install it (e.g. apt-get install zstd) or put it on PATH`),
      );
    } else if (reply.error !== undefined) {
      pending.reject(this.#failure(pending.name, `could not be started: ${reply.error}`));
    } else if (reply.code === 0) {
      pending.resolve({ stderr });
    } else {
      const how = reply.signal ? `was killed by ${reply.signal}` : `exited with status ${reply.code}`;
      const tail = stderr.trim().split('\n').slice(-3).join(' | ');
      pending.reject(
        new PmsError('PMS_ERR_TOOL_FAILED', `${pending.name} ${how}${tail ? `: ${tail}` : ''}`, {
          details: { tool: pending.name, exitCode: reply.code, signal: reply.signal },
        }),
      );
    }
  }

  #failure(name: string, why: string): PmsError {
    // `relay`: the relay itself failed, which says nothing about the program's input.
    return new PmsError('PMS_ERR_TOOL_FAILED', `${name} ${why}`, { details: { tool: name, relay: true } });
  }
}

function aborted(name: string, cause: unknown): PmsError {
  return new PmsError('PMS_ERR_ABORTED', `${name} was stopped because the operation was cancelled`, { cause });
}
