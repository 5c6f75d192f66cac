import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childEnv } from '../../../process/child-env.js';
import { SEGMENT_WORKER_ENV, SEGMENT_WORKER_NODE_FLAGS } from '../../../process/segment-worker-flags.js';
import { LOG_FILE, livePrefetcher, markWanted, spoolDirectory, spoolRoot } from './spool.js';

/** The names wal-fetch's configuration is read from (repository, credentials, key files, prefetch bounds). */
const CONFIG_VARIABLE = /^(BACKUP_|AWS_|S3_)/;

export interface StartPrefetcherOptions {
  readonly dataDir: string;
  readonly systemIdentifier: string;
  readonly allowUnsigned: boolean;
  /** The environment wal-fetch was started with (PostgreSQL's, holding the BACKUP_* settings). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Marked as the segment recovery wants (spool.ts markWanted) before the prefetcher is looked for or started. */
  readonly wanted?: string;
}

/**
 * Makes sure one background prefetcher runs for this data directory: starts
 * `pms-backup wal-prefetch run` detached (it outlives this restore_command call) unless a live
 * one holds the lock. The child is started like every other child, with the allowlisted
 * environment and no secret in argv; the configuration it needs (repository credentials, key
 * paths) reaches it through a pipe on stdin, which it reads once and closes.
 */
export async function ensurePrefetcher(options: StartPrefetcherOptions): Promise<'running' | 'started'> {
  const directory = spoolDirectory(options.dataDir, options.systemIdentifier, options.allowUnsigned);
  mkdirSync(directory, { recursive: true, mode: 0o700 });
  if (options.wanted !== undefined) markWanted(directory, options.wanted);
  if (livePrefetcher(options.dataDir) !== undefined) return 'running';
  const env = options.env ?? process.env;
  const config = Object.fromEntries(Object.entries(env).filter(([name, value]) => value !== undefined && CONFIG_VARIABLE.test(name)));
  const log = openSync(join(spoolRoot(options.dataDir), LOG_FILE), 'a', 0o600);
  try {
    const child = spawn(
      process.execPath,
      [...SEGMENT_WORKER_NODE_FLAGS, pmsBackupBin(), 'wal-prefetch', 'run', ...(options.allowUnsigned ? ['--allow-unsigned'] : [])],
      {
        cwd: options.dataDir,
        detached: true,
        env: childEnv(SEGMENT_WORKER_ENV),
        stdio: ['pipe', 'ignore', log],
      },
    );
    const written = new Promise<void>((done, fail) => {
      child.once('error', fail);
      child.stdin!.once('error', fail);
      child.stdin!.end(JSON.stringify(config), () => done());
    });
    await written;
    child.unref();
    return 'started';
  } finally {
    closeSync(log);
  }
}

/** bin/pms-backup.js of this installation (dist/commands/wal-fetch/prefetch/ → ../../../../bin). */
function pmsBackupBin(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'bin', 'pms-backup.js');
}
