import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { test } from 'node:test';
import { isPmsError } from '../errors/catalogue.js';
import { MemoryStorage } from '../storage/memory/memory-storage.js';
import { LOCK_KEY, acquireRepositoryLock, usingRepositoryLock } from './repository-lock.js';

const MINUTE = 60_000;

/** A pid no process can have: above the kernel's pid_max. */
const DEAD_PID = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim()) + 1;

async function plantLock(storage: MemoryStorage, holder: { host: string; pid: number; heartbeatAgoMs: number; operation?: string }) {
  const heartbeatAt = new Date(Date.now() - holder.heartbeatAgoMs).toISOString();
  await storage.putBytes(
    LOCK_KEY,
    JSON.stringify({
      token: 'planted',
      operation: holder.operation ?? 'base-backup',
      host: holder.host,
      pid: holder.pid,
      acquiredAt: heartbeatAt,
      heartbeatAt,
    }),
  );
}

test('a held lock refuses a second taker with PMS_ERR_LOCKED naming the holder; after release it can be taken', async () => {
  const storage = new MemoryStorage();
  const held = await acquireRepositoryLock(storage, 'create');
  await assert.rejects(acquireRepositoryLock(storage, 'prune'), (error) => {
    assert.ok(isPmsError(error, 'PMS_ERR_LOCKED'));
    assert.match(error.message, new RegExp(`locked by create \\(pid ${process.pid} on ${hostname()}`));
    return true;
  });
  await held.release();
  assert.equal(await storage.head(LOCK_KEY), undefined);
  const again = await acquireRepositoryLock(storage, 'prune');
  await again.release();
});

test('a lock whose holder process no longer exists on this host is removed and retaken, and the caller is told why', async () => {
  const storage = new MemoryStorage();
  await plantLock(storage, { host: hostname(), pid: DEAD_PID, heartbeatAgoMs: 0 });
  const recovered: string[] = [];
  const lock = await acquireRepositoryLock(storage, 'create', (reason) => recovered.push(reason));
  assert.deepEqual(recovered, [`removed a stale lock held by base-backup (process ${DEAD_PID} on ${hostname()} no longer exists)`]);
  assert.equal(JSON.parse((await storage.getBytes(LOCK_KEY)).toString()).token, lock.token);
  await lock.release();
});

test('a lock on another host is stale only once its heartbeat is 10 minutes old (its pid cannot be checked from here)', async () => {
  const fresh = new MemoryStorage();
  await plantLock(fresh, { host: 'pms-backup-7f9c-xk2p', pid: DEAD_PID, heartbeatAgoMs: 9 * MINUTE });
  await assert.rejects(acquireRepositoryLock(fresh, 'create'), (error) => isPmsError(error, 'PMS_ERR_LOCKED'));

  const stale = new MemoryStorage();
  await plantLock(stale, { host: 'pms-backup-7f9c-xk2p', pid: DEAD_PID, heartbeatAgoMs: 10 * MINUTE + 1000 });
  const recovered: string[] = [];
  const lock = await acquireRepositoryLock(stale, 'create', (reason) => recovered.push(reason));
  assert.match(recovered[0] ?? '', /not refreshed for 60\d s/);
  await lock.release();
});

test('a living holder on this host keeps its lock until it has not refreshed it for 10 minutes (a hung process)', async () => {
  const storage = new MemoryStorage();
  await plantLock(storage, { host: hostname(), pid: process.pid, heartbeatAgoMs: 2 * MINUTE });
  await assert.rejects(acquireRepositoryLock(storage, 'create'), (error) => isPmsError(error, 'PMS_ERR_LOCKED'));
  await plantLock(storage, { host: hostname(), pid: process.pid, heartbeatAgoMs: 11 * MINUTE });
  const lock = await acquireRepositoryLock(storage, 'create');
  await lock.release();
});

test('an unreadable lock object is treated as stale rather than blocking the repository forever', async () => {
  const storage = new MemoryStorage();
  await storage.putBytes(LOCK_KEY, '{"token": "half-writ');
  const recovered: string[] = [];
  const lock = await acquireRepositoryLock(storage, 'prune', (reason) => recovered.push(reason));
  assert.match(recovered[0] ?? '', /stale lock held by unknown/);
  await lock.release();
});

test('release leaves alone a lock that meanwhile belongs to someone else', async () => {
  const storage = new MemoryStorage();
  const lock = await acquireRepositoryLock(storage, 'create');
  await plantLock(storage, { host: 'other', pid: 1, heartbeatAgoMs: 0, operation: 'prune' });
  await lock.release();
  assert.equal(JSON.parse((await storage.getBytes(LOCK_KEY)).toString()).operation, 'prune');
});

test('usingRepositoryLock releases the lock when the work throws, and passes the error on unchanged', async () => {
  const storage = new MemoryStorage();
  const boom = new Error('work failed');
  await assert.rejects(
    usingRepositoryLock(storage, 'create', async () => {
      assert.ok((await storage.head(LOCK_KEY)) !== undefined, 'held while the work runs');
      throw boom;
    }),
    (error) => error === boom,
  );
  assert.equal(await storage.head(LOCK_KEY), undefined);
  assert.equal(await usingRepositoryLock(storage, 'create', async () => 42), 42);
});

test('of several processes racing for a free lock exactly one gets it', async () => {
  const storage = new MemoryStorage();
  const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => acquireRepositoryLock(storage, `op-${i}`)));
  const won = results.filter((r) => r.status === 'fulfilled');
  assert.equal(won.length, 1);
  assert.ok(results.every((r) => r.status === 'fulfilled' || isPmsError(r.reason, 'PMS_ERR_LOCKED')));
  await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireRepositoryLock>>>).value.release();
});
