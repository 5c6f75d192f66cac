import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { PmsError } from '../errors/catalogue.js';
import { childEnv } from './child-env.js';

const STDERR_LIMIT = 16 * 1024;

export interface ToolProcess {
  readonly child: ChildProcess;
  /** Resolves when the program exits 0; rejects with its stderr tail otherwise. */
  readonly done: Promise<void>;
  /** Last bytes the program wrote to stderr (bounded, for error messages). */
  stderr(): string;
}

export interface ToolOptions {
  /**
   * The child's whole environment. Without it the child gets childEnv() (PATH, locale, TZ,
   * TMPDIR), never a copy of ours; callers that need more build it with childEnv(extra).
   */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly stdin?: 'pipe' | 'ignore';
  readonly stdout?: 'pipe' | 'ignore';
  /** Runs the program as this OS user (via runuser) when we are root. */
  readonly runAs?: string | undefined;
  readonly signal?: AbortSignal;
  /** Exit codes other than 0 that still mean success (e.g. pg_restore warnings are not). */
  readonly okExitCodes?: readonly number[];
}

/**
 * Starts a helper program with an argument array (never a shell, so nothing is re-parsed and
 * no secret reaches argv) and keeps the tail of its stderr for the error message.
 */
export function startTool(command: string, args: readonly string[], options: ToolOptions = {}): ToolProcess {
  const [file, argv] = options.runAs ? ['runuser', ['-u', options.runAs, '--', command, ...args]] : [command, [...args]];
  const spawnOptions: SpawnOptions = {
    env: options.env ?? childEnv(),
    stdio: [options.stdin ?? 'ignore', options.stdout ?? 'pipe', 'pipe'],
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  };
  const child = spawn(file, argv, spawnOptions);
  let tail = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-STDERR_LIMIT);
  });
  const name = command.split('/').pop() ?? command;
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') {
        reject(
          new PmsError(
            'PMS_ERR_TOOL_MISSING',
            `${name} was not found: install it (e.g. apt-get install postgresql-client-15 zstd) or put it on PATH`,
            { cause: error },
          ),
        );
      } else if (error.name === 'AbortError') {
        reject(new PmsError('PMS_ERR_ABORTED', `${name} was stopped because the operation was cancelled`, { cause: error }));
      } else {
        reject(new PmsError('PMS_ERR_TOOL_FAILED', `${name} could not be started: ${error.message}`, { cause: error }));
      }
    });
    child.once('close', (code, signal) => {
      if (code === 0 || (code !== null && options.okExitCodes?.includes(code))) {
        resolve();
        return;
      }
      const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
      // The first error line explains more than the tail (pg_restore echoes the failing statement).
      const lines = tail.trim().split('\n');
      const firstError = lines.find((l) => /\b(error|fatal|ERROR|FATAL)\b/.test(l));
      const shown = firstError ? [firstError, ...lines.slice(-2).filter((l) => l !== firstError)] : lines.slice(-6);
      const detail = tail.trim() ? `: ${shown.join(' | ')}` : '';
      reject(new PmsError('PMS_ERR_TOOL_FAILED', `${name} ${how}${detail}`, { details: { tool: name, exitCode: code, signal } }));
    });
  });
  // Callers often attach handlers late (after a pipeline settles); avoid an unhandled rejection.
  done.catch(() => undefined);
  return { child, done, stderr: () => tail };
}

export interface ToolResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a short program to completion and returns its output. */
export async function runTool(
  command: string,
  args: readonly string[],
  options: ToolOptions & { input?: string } = {},
): Promise<ToolResult> {
  const tool = startTool(command, args, { ...options, stdin: options.input === undefined ? 'ignore' : 'pipe' });
  let stdout = '';
  tool.child.stdout?.setEncoding('utf8');
  tool.child.stdout?.on('data', (chunk: string) => {
    stdout += chunk;
  });
  if (options.input !== undefined) {
    // A program that exits before reading its input (psql that cannot connect) closes the pipe:
    // the EPIPE is no news, its exit status and stderr say what happened.
    tool.child.stdin?.on('error', () => undefined);
    tool.child.stdin?.end(options.input);
  }
  await tool.done;
  return { stdout, stderr: tool.stderr() };
}
