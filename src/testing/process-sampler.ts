import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { binPath } from './run-cli.js';

/** One look at a descendant process of the CLI while it ran (Linux /proc). */
export interface ProcessSample {
  readonly pid: number;
  readonly comm: string;
  /** Its environment, NAME=value, as the kernel shows it in /proc/<pid>/environ. */
  readonly environ: readonly string[];
  /** When PGPASSFILE was set and the file still existed: its mode and its directory's. */
  readonly passfile?: { readonly path: string; readonly fileMode: number; readonly dirMode: number };
}

export interface SampledRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The first sample of each (pid, program) seen. */
  readonly samples: readonly ProcessSample[];
}

function parentOf(pid: string): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so count from the last ')'.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function look(pid: number): ProcessSample | undefined {
  try {
    const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
    const path = environ.find((entry) => entry.startsWith('PGPASSFILE='))?.slice('PGPASSFILE='.length);
    let passfile: ProcessSample['passfile'];
    if (path) {
      try {
        passfile = { path, fileMode: statSync(path).mode & 0o777, dirMode: statSync(dirname(path)).mode & 0o777 };
      } catch {
        passfile = undefined; // already removed: the program has finished with it
      }
    }
    return { pid, comm, environ, ...(passfile ? { passfile } : {}) };
  } catch {
    return undefined; // exited between the listing and the read
  }
}

/**
 * Runs a CLI as runCli does and, while it runs, keeps looking at every process descended from
 * it through /proc (needs root or the same user). A forked child shows its parent's
 * environment until it execs, so samples still named like the CLI's own process are skipped.
 * `onSample` may stop the run early (e.g. send a signal) by returning true.
 */
export function runCliSampled(
  name: 'pms-backup' | 'pms-telemetry',
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  onSample?: (sample: ProcessSample, cli: number) => void,
): Promise<SampledRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [binPath(name), ...args], {
      env: { PATH: process.env['PATH'], HOME: process.env['HOME'], ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const cli = child.pid ?? -1;
    let cliComm = 'node';
    const seen = new Map<string, ProcessSample>();
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const sample = (): void => {
      try {
        cliComm = readFileSync(`/proc/${cli}/comm`, 'utf8').trim();
      } catch {
        // exited
      }
      const parents = new Map<number, number>();
      for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        const parent = parentOf(entry);
        if (parent !== undefined) parents.set(Number(entry), parent);
      }
      const descends = (pid: number): boolean => {
        for (let at = parents.get(pid), hops = 0; at !== undefined && hops < 64; at = parents.get(at), hops += 1) {
          if (at === cli) return true;
        }
        return false;
      };
      for (const pid of parents.keys()) {
        if (!descends(pid)) continue;
        const found = look(pid);
        if (!found || found.comm === cliComm || found.comm === 'node') continue;
        const key = `${pid}:${found.comm}`;
        const earlier = seen.get(key);
        // Keep the first look, but one that caught the passfile while it existed is better.
        if (!earlier || (!earlier.passfile && found.passfile)) seen.set(key, found);
        onSample?.(found, cli);
      }
    };
    const timer = setInterval(sample, 2);
    child.once('error', (error) => {
      clearInterval(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearInterval(timer);
      resolve({ code, signal, stdout, stderr, samples: [...seen.values()] });
    });
  });
}
