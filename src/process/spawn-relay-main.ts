/**
 * The relay's own process (spawn-relay.ts explains why it exists). It reads one JSON request a
 * line on stdin, `{"id":1,"command":"zstd","args":[...]}` or `{"id":1,"kill":true}`, starts the
 * program with this process's environment (already the allowlisted child environment) and
 * answers `{"id":1,"code":0,"signal":null,"stderr":"..."}` when it exits. It keeps almost no
 * memory of its own, so the fork behind each spawn is cheap here. It leaves when stdin ends (its
 * parent is gone), killing whatever it still runs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const STDERR_LIMIT = 16 * 1024;

interface Request {
  readonly id: number;
  readonly command?: string;
  readonly args?: readonly string[];
  readonly kill?: boolean;
}

const running = new Map<number, ChildProcess>();
const answer = (reply: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(reply)}\n`);
};
process.stdout.on('error', () => process.exit(1));

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  let request: Request;
  try {
    request = JSON.parse(line) as Request;
  } catch {
    return;
  }
  if (request.kill) {
    running.get(request.id)?.kill('SIGTERM');
    return;
  }
  if (typeof request.command !== 'string' || !Array.isArray(request.args)) {
    answer({ id: request.id, code: null, signal: null, error: 'malformed request' });
    return;
  }
  const child = spawn(request.command, [...request.args], { stdio: ['ignore', 'ignore', 'pipe'], env: process.env });
  running.set(request.id, child);
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_LIMIT);
  });
  child.once('error', (error: NodeJS.ErrnoException) => {
    running.delete(request.id);
    answer({ id: request.id, code: null, signal: null, error: error.code ?? error.message, stderr });
  });
  child.once('close', (code, signal) => {
    if (!running.delete(request.id)) return;
    answer({ id: request.id, code, signal, stderr });
  });
});
lines.once('close', () => {
  for (const child of running.values()) child.kill('SIGTERM');
  process.exitCode = 0;
});
