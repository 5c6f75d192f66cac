import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RepositoryConfig } from '../config/config.js';
import { Secret } from '../config/secret.js';

/** s3rver's built-in account; public test credentials, not a secret. */
export const S3RVER_ACCESS_KEY_ID = 'S3RVER';
export const S3RVER_SECRET_ACCESS_KEY = 'S3RVER';

export interface S3rverHarnessOptions {
  /** Bucket created at start (default `pms-test`). */
  readonly bucket?: string;
  /** Parent directory for the server's data directory (default the OS temp dir). */
  readonly parentDir?: string;
}

export interface S3rverHarness {
  /** http://127.0.0.1:<port>; the port stays the same across down()/up(). */
  readonly endpoint: string;
  readonly port: number;
  readonly bucket: string;
  /** s3rver's data directory (objects, and unfinished multipart uploads). */
  readonly directory: string;
  /** A repository config for `openStorage`, under an optional key prefix. */
  repository(prefix?: string): RepositoryConfig;
  /** The environment `loadBackupConfig` reads, for CLI tests. */
  env(prefix?: string): Record<string, string>;
  /** Makes the endpoint go down like a crashed server (SIGKILL); data stays on disk. */
  down(): Promise<void>;
  /** Brings it back on the same port with the same data. */
  up(): Promise<void>;
  readonly running: boolean;
  /** Upload IDs of multipart uploads s3rver still holds (s3rver cannot list or abort them itself). */
  pendingMultipartUploads(): string[];
  /** Stops the server and deletes its directory. Safe to call twice. */
  destroy(): Promise<void>;
}

const CHILD = fileURLToPath(new URL('./s3rver-process.js', import.meta.url));
const START_ATTEMPTS = 20;

interface ChildMessage {
  readonly ready: boolean;
  readonly port?: number;
  readonly error?: string;
}

function startChild(directory: string, port: number, bucket: string): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = fork(CHILD, [directory, String(port), bucket], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
    const onExit = (code: number | null): void => reject(new Error(`s3rver exited (${code}) before listening: ${stderr}`));
    child.once('exit', onExit);
    child.once('error', reject);
    child.once('message', (message: ChildMessage) => {
      child.off('exit', onExit);
      if (message.ready && message.port !== undefined) {
        resolve({ child, port: message.port });
      } else {
        child.kill('SIGKILL');
        reject(Object.assign(new Error(`s3rver could not listen: ${message.error ?? 'unknown'}`), { code: message.error }));
      }
    });
  });
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Starts a real s3rver on a free 127.0.0.1 port with one bucket, in a temporary directory.
 * Always pair with `destroy()` (or use `usingS3rver`), e.g. `after(() => s3.destroy())`.
 */
export async function startS3rver(options: S3rverHarnessOptions = {}): Promise<S3rverHarness> {
  const bucket = options.bucket ?? 'pms-test';
  const directory = mkdtempSync(join(options.parentDir ?? tmpdir(), 'pms-s3rver-'));
  let child: ChildProcess | undefined;
  let port: number;
  try {
    ({ child, port } = await startChild(directory, 0, bucket));
  } catch (error) {
    rmSync(directory, { recursive: true, force: true });
    throw error;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  let destroyed = false;

  const down = async (): Promise<void> => {
    const current = child;
    child = undefined;
    if (current === undefined) return;
    current.kill('SIGKILL');
    await waitForExit(current);
  };

  const harness: S3rverHarness = {
    endpoint,
    port,
    bucket,
    directory,
    get running() {
      return child !== undefined;
    },
    repository(prefix = '') {
      const clean = prefix.replace(/^\/+|\/+$/g, '');
      return {
        kind: 's3',
        url: `s3://${bucket}${clean ? `/${clean}` : ''}`,
        s3: {
          bucket,
          prefix: clean,
          region: 'us-east-1',
          endpoint,
          forcePathStyle: true,
          accessKeyId: new Secret(S3RVER_ACCESS_KEY_ID),
          secretAccessKey: new Secret(S3RVER_SECRET_ACCESS_KEY),
        },
      };
    },
    env(prefix = '') {
      const clean = prefix.replace(/^\/+|\/+$/g, '');
      return {
        BACKUP_REPOSITORY: `s3://${bucket}${clean ? `/${clean}` : ''}`,
        S3_ENDPOINT: endpoint,
        S3_FORCE_PATH_STYLE: 'true',
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: S3RVER_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY: S3RVER_SECRET_ACCESS_KEY,
      };
    },
    down,
    async up() {
      if (destroyed) throw new Error('s3rver harness was destroyed');
      if (child !== undefined) return;
      // The port was just released; another process may briefly hold it, so retry.
      for (let attempt = 1; ; attempt++) {
        try {
          ({ child } = await startChild(directory, port, bucket));
          return;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= START_ATTEMPTS) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    },
    pendingMultipartUploads() {
      try {
        return readdirSync(join(directory, bucket, '._S3rver_uploads'));
      } catch {
        return [];
      }
    },
    async destroy() {
      destroyed = true;
      await down();
      rmSync(directory, { recursive: true, force: true });
    },
  };
  return harness;
}

/** Runs `use` with a fresh s3rver and always destroys it afterwards. */
export async function usingS3rver<T>(options: S3rverHarnessOptions, use: (s3: S3rverHarness) => Promise<T>): Promise<T> {
  const s3 = await startS3rver(options);
  try {
    return await use(s3);
  } finally {
    await s3.destroy();
  }
}
