import { rename } from 'node:fs/promises';
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

export function createSteps(total: number): Steps {
  let stepStarted = Date.now();
  let stepNumber = 0;
  const done = () => process.stdout.write(`      done in ${((Date.now() - stepStarted) / 1000).toFixed(1)} s\n`);
  return {
    step(text) {
      if (stepNumber > 0) done();
      stepNumber += 1;
      stepStarted = Date.now();
      process.stdout.write(`[${String(stepNumber).padStart(2)}/${total}] ${text}\n`);
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
