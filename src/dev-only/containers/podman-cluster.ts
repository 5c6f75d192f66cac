import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { podmanEnv } from '../images/podman.js';
import { runTool } from '../../process/tool-process.js';
import { unmountVolumes, writePodVolumes } from './host-volumes.js';
import { type PodNetwork, containerRunArgs, envFileText, podCreateArgs } from './podman-args.js';
import type { ContainerPlan, PodPlan } from './pod-plan.js';

export interface Exit {
  readonly code: number;
  readonly output: string;
}

async function podmanExit(args: readonly string[], input?: string): Promise<Exit> {
  // stdin is an empty pipe unless input is given (podman reads it only with -i).
  const child = spawn('podman', args, { env: podmanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end(input ?? '');
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c ?? 128));
  });
  return { code, output };
}

async function podman(args: readonly string[]): Promise<string> {
  const exit = await podmanExit(args);
  if (exit.code !== 0) throw new Error(`podman ${args.slice(0, 2).join(' ')} exited ${exit.code}: ${exit.output.trim().slice(-2000)}`);
  return exit.output;
}

/** A started pod: its plan and where its volumes live. */
export interface RunningPod {
  readonly plan: PodPlan;
  readonly ip: string;
  readonly volumeDirs: ReadonlyMap<string, string>;
}

/**
 * Pods on one podman network of their own, created from plans. Init containers run to
 * completion in order, native sidecars start before the next one, then the main containers:
 * detached for a server, attached (exit status returned) for a job.
 */
export class PodmanCluster {
  readonly #pods = new Set<string>();

  constructor(
    readonly runDir: string,
    readonly network: string,
    readonly subnet: string,
  ) {}

  /** Each cluster's pods carry its network's name, so one test's clean-up never touches another's pods. */
  get #label(): string {
    return `pms.test.containers=${this.network}`;
  }

  /** Removes what an earlier, killed run of this test may have left, then makes the network. */
  async setUp(): Promise<void> {
    await this.removeLeftovers();
    unmountVolumes(this.runDir);
    rmSync(this.runDir, { recursive: true, force: true });
    mkdirSync(this.runDir, { recursive: true });
    await podman(['network', 'create', '--subnet', this.subnet, '--label', this.#label, this.network]);
  }

  async removeLeftovers(): Promise<void> {
    const pods = (await podman(['pod', 'ls', '-q', '--filter', `label=${this.#label}`])).split('\n').filter(Boolean);
    if (pods.length > 0) await podman(['pod', 'rm', '-f', ...pods]);
    if ((await podmanExit(['network', 'exists', this.network])).code === 0) await podman(['network', 'rm', '-f', this.network]);
  }

  async createPod(plan: PodPlan, net: Omit<PodNetwork, 'network'>): Promise<RunningPod> {
    mkdirSync(join(this.runDir, 'pods', plan.name), { recursive: true });
    const volumeDirs = writePodVolumes(plan, this.runDir);
    await podman([...podCreateArgs(plan, { ...net, network: this.network }), '--label', this.#label]);
    this.#pods.add(plan.name);
    return { plan, ip: net.ip, volumeDirs };
  }

  #args(pod: RunningPod, container: ContainerPlan, detached: boolean): string[] {
    const envFile = join(this.runDir, 'pods', pod.plan.name, `${container.name}.env`);
    writeFileSync(envFile, envFileText(container), { mode: 0o600 });
    const args = containerRunArgs(pod.plan, container, pod.volumeDirs, envFile);
    return detached ? [args[0] as string, '--detach', ...args.slice(1)] : args;
  }

  /** Init containers and sidecars, in order; throws with the failing one's output. */
  async runInit(pod: RunningPod): Promise<void> {
    for (const container of pod.plan.containers) {
      if (container.role === 'init') {
        const exit = await podmanExit(this.#args(pod, container, false));
        if (exit.code !== 0) throw new Error(`${pod.plan.name}: init container ${container.name} exited ${exit.code}:\n${exit.output}`);
      } else if (container.role === 'sidecar') {
        await podman(this.#args(pod, container, true));
      }
    }
  }

  /** A server pod: init containers, then every main container detached. */
  async startServer(pod: RunningPod): Promise<void> {
    await this.runInit(pod);
    for (const container of pod.plan.containers.filter((c) => c.role === 'main')) await podman(this.#args(pod, container, true));
  }

  /** A job pod: init containers, then its one main container to completion. */
  async runJob(pod: RunningPod): Promise<Exit> {
    await this.runInit(pod);
    const main = pod.plan.containers.filter((c) => c.role === 'main');
    if (main.length !== 1) throw new Error(`${pod.plan.name}: a job pod here has exactly one main container, not ${main.length}`);
    return podmanExit(this.#args(pod, main[0] as ContainerPlan, false));
  }

  /** `input`, when given, is the command's stdin (a password stays out of every argv). */
  async exec(pod: string, container: string, command: readonly string[], input?: string): Promise<Exit> {
    return podmanExit(['exec', ...(input === undefined ? [] : ['-i']), `${pod}-${container}`, ...command], input);
  }

  /** The container's exit status once it has stopped, undefined while it runs. */
  async exitCode(pod: string, container: string): Promise<number | undefined> {
    const [status, code] = (await podman(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', `${pod}-${container}`]))
      .trim()
      .split(' ');
    return status === 'exited' || status === 'stopped' ? Number(code) : undefined;
  }

  /** SIGKILL to the container's process tree: a crash without any chance to clean up. */
  async kill(pod: string, container: string): Promise<void> {
    await podman(['kill', '--signal', 'KILL', `${pod}-${container}`]);
  }

  async logs(pod: string, container: string): Promise<string> {
    return (await podmanExit(['logs', `${pod}-${container}`])).output;
  }

  async removePod(name: string): Promise<void> {
    await podman(['pod', 'rm', '-f', '-t', '2', name]);
    this.#pods.delete(name);
  }

  async tearDown(): Promise<void> {
    for (const pod of [...this.#pods]) await this.removePod(pod).catch(() => undefined);
    await this.removeLeftovers().catch(() => undefined);
    unmountVolumes(this.runDir);
  }
}

/** nft -f from text; `nft delete table` to undo. */
export async function nft(ruleset: string): Promise<void> {
  await runTool('nft', ['-f', '-'], { input: ruleset });
}

export async function nftDeleteTable(table: string): Promise<void> {
  await runTool('nft', ['delete', 'table', 'inet', table]).catch(() => undefined);
}
