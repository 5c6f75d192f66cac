import type { ChildProcess } from 'node:child_process';
import { rename } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startThrowawayCluster, type ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { runCli } from '../../testing/run-cli.js';

/** What both demos (single-node and --ha) print and run: numbered steps with their durations, the CLIs. */
export interface Steps {
  step(text: string): void;
  info(text: string): void;
  /** Closes the last step ("done in ..."). */
  finish(): void;
}

/**
 * `--fail-at-step N`: the demo fails on purpose as step N begins, so a test (or a doubter) can
 * see that a failed run removes what it started, --keep or not.
 */
function failAtStep(): number | undefined {
  const index = process.argv.indexOf('--fail-at-step');
  return index >= 0 ? Number(process.argv[index + 1]) : undefined;
}

export function createSteps(total: number): Steps {
  let stepStarted = Date.now();
  let stepNumber = 0;
  const failAt = failAtStep();
  const done = () => process.stdout.write(`      done in ${((Date.now() - stepStarted) / 1000).toFixed(1)} s\n`);
  return {
    step(text) {
      if (stepNumber > 0) done();
      stepNumber += 1;
      stepStarted = Date.now();
      process.stdout.write(`[${String(stepNumber).padStart(2)}/${total}] ${text}\n`);
      if (stepNumber === failAt) throw new Error(`--fail-at-step ${failAt}: failing on purpose at step ${failAt}`);
    },
    info(text) {
      process.stdout.write(`      ${text}\n`);
    },
    finish() {
      done();
      process.stdout.write('\n');
    },
  };
}

/** Runs one of our CLIs; its stdout, or an error with its stderr minus the JSON log lines. */
export async function cli(name: 'pms-backup' | 'pms-telemetry', args: string[], env: Record<string, string>): Promise<string> {
  const result = await runCli(name, args, env);
  if (result.code !== 0)
    throw new Error(
      `${name} ${args.join(' ')} failed (exit ${result.code}):\n${result.stderr
        .split('\n')
        .filter((l) => !l.startsWith('{'))
        .join('\n')}`,
    );
  return result.stdout;
}

export async function waitFor(what: string, probe: () => Promise<boolean>, seconds = 120): Promise<void> {
  for (let i = 0; i < seconds * 10; i += 1) {
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out after ${seconds} s waiting for ${what}`);
}

/**
 * `restore --pitr` into `<work>/pitr-data`, then that directory started as a throwaway server and
 * waited on until recovery reaches the target and promotes. `onStarted` gets the server as soon
 * as it runs, so the caller's cleanup stops it even if recovery never completes.
 */
export async function recoverToTarget(options: {
  readonly work: string;
  readonly targetTime: string;
  readonly env: Record<string, string>;
  readonly serverEnv: Record<string, string>;
  readonly onStarted: (cluster: ThrowawayCluster) => void;
}): Promise<ThrowawayCluster> {
  const pitrDir = join(options.work, 'pitr-data');
  await cli('pms-backup', ['restore', '--pitr', '--target-time', options.targetTime, '--pgdata', pitrDir], options.env);
  const recovered = await startThrowawayCluster({
    parentDir: options.work,
    settings: { archive_mode: 'off' },
    serverEnv: options.serverEnv,
    populate: async (dataDir) => {
      await rename(pitrDir, dataDir);
    },
  });
  options.onStarted(recovered);
  await waitFor('recovery to reach the target and promote', async () => (await recovered.psql('SELECT pg_is_in_recovery()')) === 'f');
  return recovered;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited (at once if it had). */
export async function stopProcess(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  // Bounded: the API's graceful close waits for requests in flight, which a dead server may hold.
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** A cleanup that may run more than once but never twice at a time: each run removes what is there then. */
export function serialized(run: () => Promise<void>): () => Promise<void> {
  let chain = Promise.resolve();
  return () => {
    chain = chain.then(run, run);
    return chain;
  };
}

let onInterrupt: (() => Promise<void>) | undefined;

/** The running demo's cleanup (made with serialized), for exitWhenDone to run on a signal. */
export function cleanUpOnInterrupt(cleanup: () => Promise<void>): void {
  onInterrupt = cleanup;
}

/** Bounds the wait for an interrupted demo to wind down (its steps fail fast once its servers are gone). */
const WIND_DOWN_MS = 60_000;

/**
 * Exits with the demo's code, or on failure 1 with the reason. Interrupted (Ctrl-C, SIGTERM,
 * SIGHUP), it removes what the demo started as a failure does, --keep or not: the demo's cleanup
 * runs at once (stopping its servers and the API, so the step under way fails), again once the
 * demo has wound down (for anything started meanwhile, and files written after the first run),
 * and the process then exits 128 + the signal's number. Without this the harness's own signal
 * handler killed Patroni and PostgreSQL, but the API and the work directories were left.
 */
export function exitWhenDone(demo: Promise<number>): void {
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (name: NodeJS.Signals): void => {
    if (interrupted !== undefined) {
      process.stderr.write(`${name}: still removing what the demo started\n`);
      return;
    }
    interrupted = name;
    process.stderr.write(`\n${name}: removing everything the demo started\n`);
    void (async () => {
      await onInterrupt?.().catch(() => undefined);
      await Promise.race([demo.catch(() => undefined), sleep(WIND_DOWN_MS)]);
      await onInterrupt?.().catch(() => undefined);
      process.stdout.write(`PMS demo INTERRUPTED by ${name}: everything it started was removed\n`);
      process.exit(128 + (constants.signals[name] ?? 0));
    })();
  };
  for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(name, onSignal);
  demo.then(
    (code) => {
      if (interrupted === undefined) process.exit(code);
    },
    (error: unknown) => {
      if (interrupted !== undefined) return;
      process.stderr.write(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}\n`);
      process.stdout.write(`PMS demo FAILED: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}\n`);
      process.exit(1);
    },
  );
}
