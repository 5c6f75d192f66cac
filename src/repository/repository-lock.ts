import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { PmsError, isPmsError } from '../errors/catalogue.js';
import type { Storage } from '../storage/storage.js';

export const LOCK_KEY = 'locks/repository.lock';

/** A lock whose holder stopped refreshing it for this long is stale (holder killed). */
const STALE_AFTER_MS = 10 * 60 * 1000;
const HEARTBEAT_MS = 60 * 1000;

interface LockBody {
  readonly token: string;
  readonly operation: string;
  readonly host: string;
  readonly pid: number;
  readonly acquiredAt: string;
  readonly heartbeatAt: string;
}

export interface HeldLock {
  readonly token: string;
  release(): Promise<void>;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readLock(storage: Storage): Promise<LockBody | undefined> {
  try {
    return JSON.parse((await storage.getBytes(LOCK_KEY)).toString('utf8')) as LockBody;
  } catch (error) {
    if (isPmsError(error, 'PMS_ERR_NOT_FOUND')) return undefined;
    if (error instanceof SyntaxError)
      return {
        token: 'corrupt',
        operation: 'unknown',
        host: '',
        pid: 0,
        acquiredAt: new Date(0).toISOString(),
        heartbeatAt: new Date(0).toISOString(),
      };
    throw error;
  }
}

/**
 * Why the lock is stale, or undefined if its holder may still be working: the holder's
 * process is gone (same host), or it has not refreshed the lock for STALE_AFTER_MS (any host,
 * e.g. a pod killed by Kubernetes).
 */
function staleReason(lock: LockBody, now: number): string | undefined {
  if (lock.host === hostname() && lock.pid > 0 && !isAlive(lock.pid)) return `process ${lock.pid} on ${lock.host} no longer exists`;
  const age = now - Date.parse(lock.heartbeatAt);
  if (!(age < STALE_AFTER_MS)) return `not refreshed for ${Math.round(age / 1000)} s`;
  return undefined;
}

/**
 * Takes the repository's exclusive lock (create, base-backup, prune). The lock is a write-once
 * object; a stale one (holder killed) is removed and retaken, and after taking it we read it
 * back so two processes recovering the same stale lock cannot both believe they hold it.
 */
export async function acquireRepositoryLock(
  storage: Storage,
  operation: string,
  onStaleRecovered?: (reason: string) => void,
): Promise<HeldLock> {
  const token = randomUUID();
  const body = (): LockBody => ({
    token,
    operation,
    host: hostname(),
    pid: process.pid,
    acquiredAt,
    heartbeatAt: new Date().toISOString(),
  });
  const acquiredAt = new Date().toISOString();
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await storage.putBytes(LOCK_KEY, JSON.stringify(body()), { ifAbsent: true });
    } catch (error) {
      if (!isPmsError(error, 'PMS_ERR_TARGET_EXISTS')) throw error;
      const holder = await readLock(storage);
      if (holder === undefined) continue;
      const reason = staleReason(holder, Date.now());
      if (reason === undefined) {
        throw new PmsError(
          'PMS_ERR_LOCKED',
          `the repository is locked by ${holder.operation} (pid ${holder.pid} on ${holder.host}, since ${holder.acquiredAt}); wait for it to finish`,
          {
            details: { holder: { operation: holder.operation, host: holder.host, pid: holder.pid, acquiredAt: holder.acquiredAt } },
          },
        );
      }
      onStaleRecovered?.(`removed a stale lock held by ${holder.operation} (${reason})`);
      await storage.delete(LOCK_KEY);
      continue;
    }
    const check = await readLock(storage);
    if (check?.token !== token) continue;
    const timer = setInterval(() => {
      void storage.putBytes(LOCK_KEY, JSON.stringify(body())).catch(() => undefined);
    }, HEARTBEAT_MS);
    timer.unref();
    return {
      token,
      release: async () => {
        clearInterval(timer);
        const current = await readLock(storage).catch(() => undefined);
        if (current?.token === token) await storage.delete(LOCK_KEY);
      },
    };
  }
  throw new PmsError('PMS_ERR_LOCKED', 'could not take the repository lock: another process keeps taking it; retry later');
}

export async function usingRepositoryLock<T>(
  storage: Storage,
  operation: string,
  use: () => Promise<T>,
  onStaleRecovered?: (reason: string) => void,
): Promise<T> {
  const lock = await acquireRepositoryLock(storage, operation, onStaleRecovered);
  try {
    return await use();
  } finally {
    await lock.release();
  }
}
