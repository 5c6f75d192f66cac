import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, test } from 'node:test';
import { isPmsError } from '../errors/catalogue.js';
import { S3Storage } from '../storage/s3/s3-storage.js';
import { type S3FaultProxy, startS3FaultProxy } from './s3-fault-proxy.js';
import { type S3rverHarness, startS3rver } from './s3rver-harness.js';

let s3: S3rverHarness;
let proxy: S3FaultProxy;
let direct: S3Storage;
const FAST = { maxAttempts: 3, socketTimeoutMs: 1000, connectionTimeoutMs: 1000, partSize: 5 * 1024 * 1024 };

/** A client of the proxy with the given tuning (the default: 3 attempts, 1 s inactivity). */
function throughProxy(tuning: Partial<typeof FAST> = {}): S3Storage {
  const repository = s3.repository('proxy');
  if (repository.kind !== 's3') throw new Error('s3rver gives an s3 repository');
  return new S3Storage({ ...repository.s3, endpoint: proxy.endpoint }, { ...FAST, ...tuning });
}

async function using<T>(storage: S3Storage, use: (storage: S3Storage) => Promise<T>): Promise<T> {
  try {
    return await use(storage);
  } finally {
    await storage.close();
  }
}

async function failure(promise: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  try {
    await promise;
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
  assert.fail('expected a failure');
}

before(async () => {
  s3 = await startS3rver({ bucket: 'pms-proxy' });
  proxy = await startS3FaultProxy(s3.endpoint);
  const repository = s3.repository('proxy');
  if (repository.kind !== 's3') throw new Error('s3rver gives an s3 repository');
  direct = new S3Storage(repository.s3);
});

after(async () => {
  await direct?.close();
  await proxy?.close();
  await s3?.destroy();
});

beforeEach(() => proxy.reset());

const faultsOn = (method: string) => proxy.requests.filter((r) => r.method === method).map((r) => r.fault ?? 'ok');

describe('S3 fault proxy in front of s3rver', () => {
  test('without rules it forwards every request unchanged (signatures still verify) and records them', async () => {
    await using(throughProxy(), async (storage) => {
      await storage.putBytes('plain/object', 'hello through the proxy');
      assert.equal((await storage.getBytes('plain/object')).toString(), 'hello through the proxy');
    });
    assert.ok(proxy.requests.some((r) => r.method === 'PUT' && r.key === 'proxy/plain/object'));
    assert.ok(proxy.requests.some((r) => r.method === 'GET' && r.key === 'proxy/plain/object' && r.fault === undefined));
  });

  test('503 SlowDown on the first PUT only: the client retries and the object is stored once', async () => {
    const rule = proxy.add({ method: 'PUT', key: /slow\/object$/, nth: 1, fault: { kind: 'error', status: 503 } });
    await using(throughProxy(), (storage) => storage.putBytes('slow/object', 'stored after one SlowDown'));
    assert.equal(rule.fired, 1);
    assert.deepEqual(faultsOn('PUT'), ['error', 'ok']);
    assert.equal((await direct.getBytes('slow/object')).toString(), 'stored after one SlowDown');
  });

  test('500 on every GET: the client gives up after its attempts with PMS_ERR_REPO_UNAVAILABLE naming the status', async () => {
    await direct.putBytes('broken/object', 'x');
    proxy.add({ method: 'GET', fault: { kind: 'error', status: 500 } });
    await using(throughProxy(), async (storage) => {
      const { error } = await failure(storage.getBytes('broken/object'));
      assert.ok(isPmsError(error, 'PMS_ERR_REPO_UNAVAILABLE'), String(error));
      assert.match(error.message, /answered 500 \(InternalError\)/);
    });
    assert.deepEqual(faultsOn('GET'), ['error', 'error', 'error'], 'maxAttempts = 3');
  });

  test('a connection reset after 1000 bytes of every PUT body fails the put and stores nothing', async () => {
    proxy.add({ method: 'PUT', key: /reset\/put$/, fault: { kind: 'reset-request', afterBytes: 1000 } });
    await using(throughProxy({ maxAttempts: 2 }), async (storage) => {
      const { error } = await failure(storage.putBytes('reset/put', randomBytes(64 * 1024)));
      assert.ok(isPmsError(error, 'PMS_ERR_REPO_UNAVAILABLE'), String(error));
    });
    assert.deepEqual(faultsOn('PUT'), ['reset-request', 'reset-request']);
    assert.equal(await direct.head('reset/put'), undefined);
  });

  test('a connection reset after 1000 bytes of a GET body is an error, never a short object', async () => {
    const body = randomBytes(256 * 1024);
    await direct.putBytes('reset/get', body);
    proxy.add({ method: 'GET', key: /reset\/get$/, fault: { kind: 'reset-response', afterBytes: 1000 } });
    await using(throughProxy(), async (storage) => {
      const { error } = await failure(storage.getBytes('reset/get'));
      assert.ok(isPmsError(error, 'PMS_ERR_REPO_UNAVAILABLE'), String(error));
    });
  });

  test('a stalled response (no byte back) fails each attempt after the inactivity timeout: bounded, no hang', async () => {
    proxy.add({ method: 'HEAD', key: /stall\/head$/, fault: { kind: 'stall' } });
    await using(throughProxy({ maxAttempts: 2 }), async (storage) => {
      const { error, ms } = await failure(storage.head('stall/head'));
      assert.ok(isPmsError(error, 'PMS_ERR_REPO_UNAVAILABLE'), String(error));
      assert.ok(ms >= 2000 && ms < 20_000, `two attempts of 1 s inactivity took ${ms} ms`);
    });
    assert.deepEqual(faultsOn('HEAD'), ['stall', 'stall']);
  });

  test('a body that stalls after 1000 bytes while the reader waits fails after the inactivity timeout', async () => {
    await direct.putBytes('stall/body', randomBytes(256 * 1024));
    proxy.add({ method: 'GET', key: /stall\/body$/, fault: { kind: 'stall', afterBytes: 1000 } });
    await using(throughProxy(), async (storage) => {
      const { error, ms } = await failure(storage.getBytes('stall/body'));
      assert.ok(isPmsError(error, 'PMS_ERR_REPO_UNAVAILABLE'), String(error));
      assert.match(error.message, /ETIMEDOUT/);
      assert.ok(ms >= 1000 && ms < 15_000, `took ${ms} ms`);
    });
  });

  test('a reader that stops reading for longer than the timeout is not mistaken for a stalled server', async () => {
    const body = randomBytes(8 * 1024 * 1024);
    await direct.putBytes('slow/reader', body);
    await using(throughProxy(), async (storage) => {
      const stream = await storage.get('slow/reader');
      const chunks: Buffer[] = [];
      let paused = false;
      for await (const chunk of stream) {
        chunks.push(chunk as Buffer);
        if (!paused) {
          paused = true;
          await new Promise((resolve) => setTimeout(resolve, 2500));
        }
      }
      assert.ok(Buffer.concat(chunks).equals(body));
    });
  });

  test('2 s of latency delays a request and changes nothing else', async () => {
    await direct.putBytes('late/object', 'late');
    proxy.add({ method: 'GET', key: /late\/object$/, fault: { kind: 'latency', ms: 2000 } });
    const started = Date.now();
    await using(throughProxy({ socketTimeoutMs: 5000 }), async (storage) => {
      assert.equal((await storage.getBytes('late/object')).toString(), 'late');
    });
    assert.ok(Date.now() - started >= 2000);
  });

  test('a rule can pick one multipart part: 503 on part 2 once, the part is retried and the object is whole', async () => {
    const body = randomBytes(11 * 1024 * 1024);
    proxy.add({ method: 'PUT', key: /multi\/object$/, partNumber: 2, nth: 1, fault: { kind: 'error', status: 503 } });
    await using(throughProxy({ socketTimeoutMs: 10_000 }), (storage) => storage.putBytes('multi/object', body));
    const parts = proxy.requests.filter((r) => r.method === 'PUT' && r.partNumber !== undefined);
    assert.deepEqual(parts.map((r) => [r.partNumber, r.fault ?? 'ok']).sort(), [
      [1, 'ok'],
      [2, 'error'],
      [2, 'ok'],
      [3, 'ok'],
    ]);
    assert.ok((await direct.getBytes('multi/object')).equals(body));
  });
});
