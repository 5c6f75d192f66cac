import { execFileSync, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Repository root (dist/testing/ → ../..). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function binPath(name: 'pms-backup' | 'pms-telemetry' | 'pms-patroni-config'): string {
  return join(REPO_ROOT, 'bin', `${name}.js`);
}

/**
 * Runs a CLI exactly as a user or CronJob would (the bin file, a fresh process, only the given
 * environment plus PATH), so tests exercise the real entry point and exit codes.
 */
export function runCli(
  name: 'pms-backup' | 'pms-telemetry',
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  options: { input?: string; cwd?: string; asUser?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [binPath(name), ...args], {
      // As another OS user (we are root), with that user's ids and no HOME of ours.
      env: { PATH: process.env['PATH'], ...(options.asUser ? {} : { HOME: process.env['HOME'] }), ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.asUser ? { ...osUserIds(options.asUser), cwd: options.cwd ?? '/' } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** uid and gid of an OS user, for spawning as it. */
export function osUserIds(user: string): { uid: number; gid: number } {
  return {
    uid: Number(execFileSync('id', ['-u', user]).toString().trim()),
    gid: Number(execFileSync('id', ['-g', user]).toString().trim()),
  };
}
