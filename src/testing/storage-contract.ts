/**
 * The behaviour every Storage driver must show, as one node:test suite that each driver's
 * test file runs against a real backend (a temp directory, a real s3rver). Not a test file
 * itself: `describeStorageContract` is called from fs-storage.test.ts, s3-storage.test.ts and
 * memory-storage.unit.test.ts.
 */
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { isPmsError } from '../errors/catalogue.js';
import type { Storage } from '../storage/storage.js';

export interface ContractSubject {
  readonly storage: Storage;
  /** Bytes of buffer memory a put may hold at once (driver's documented bound plus slack). */
  readonly putMemoryBound: number;
  /** Whether concurrent ifAbsent puts are atomic on this backend (s3rver ignores If-None-Match). */
  readonly atomicIfAbsent: boolean;
  /**
   * Whether the backend itself lists in byte order. AWS S3 and MinIO do; s3rver walks its
   * directory tree (`a/...` before `a-b`), so against it only the set of keys is checked.
   */
  readonly listsInByteOrder: boolean;
  /** Driver-specific check that a failed put left no debris (temp files, multipart uploads). */
  readonly assertNoDebris?: () => Promise<void>;
  readonly dispose: () => Promise<void>;
}

const MiB = 1024 * 1024;
/** The body of the bounded-memory test; a driver that holds whole objects (memory) sizes its bound by it. */
export const LARGE_PUT_BYTES = 96 * MiB;

/** A deterministic pseudo-random stream of `total` bytes produced on demand, 64 KiB at a time. */
export function patternStream(total: number, seed = 1, onChunk?: (produced: number) => void): Readable {
  let produced = 0;
  let state = seed;
  return new Readable({
    highWaterMark: 64 * 1024,
    read() {
      if (produced >= total) {
        this.push(null);
        return;
      }
      const size = Math.min(64 * 1024, total - produced);
      const chunk = Buffer.allocUnsafe(size);
      for (let i = 0; i < size; i++) {
        if (i % 4 === 0) state = (state * 1664525 + 1013904223) >>> 0;
        chunk[i] = (state >>> ((i % 4) * 8)) & 0xff;
      }
      produced += size;
      onChunk?.(produced);
      this.push(chunk);
    },
  });
}

async function digest(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

async function keysOf(storage: Storage, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of storage.list(prefix)) keys.push(info.key);
  return keys;
}

/** A body that yields `good` bytes, then fails like a dying pg_dump. */
function failingBody(good: number, error: Error): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= good) {
        this.destroy(error);
        return;
      }
      const size = Math.min(256 * 1024, good - sent);
      sent += size;
      this.push(randomBytes(size));
    },
  });
}

function gcFunction(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

export function describeStorageContract(name: string, setup: () => Promise<ContractSubject>): void {
  describe(`${name}: Storage contract`, () => {
    let subject: ContractSubject;
    let storage: Storage;
    let counter = 0;
    const fresh = (): string => `contract-${process.pid}-${++counter}`;

    before(async () => {
      subject = await setup();
      storage = subject.storage;
    });
    after(async () => {
      await subject?.dispose();
    });

    it('round-trips a multi-MB stream byte for byte and reports its size', async () => {
      const key = `${fresh()}/data.bin`;
      const size = 12 * MiB + 123;
      const expected = await digest(patternStream(size, 7));
      const result = await storage.put(key, patternStream(size, 7));
      assert.deepEqual(result, { key, bytes: size });
      assert.deepEqual(await digest(await storage.get(key)), expected);
      assert.equal((await storage.head(key))?.bytes, size);
    });

    it('putBytes/getBytes round-trip strings and bytes, including an empty object', async () => {
      const base = fresh();
      await storage.putBytes(`${base}/text`, 'héllo');
      await storage.putBytes(`${base}/empty`, new Uint8Array());
      assert.equal((await storage.getBytes(`${base}/text`)).toString('utf8'), 'héllo');
      assert.equal((await storage.getBytes(`${base}/empty`)).length, 0);
      assert.equal((await storage.head(`${base}/empty`))?.bytes, 0);
    });

    it('a slow reader makes get() stop fetching instead of buffering the object', async (t) => {
      const key = `${fresh()}/big.bin`;
      const size = 24 * MiB;
      await storage.put(key, patternStream(size, 3));
      const stream = await storage.get(key);
      const first = await new Promise<Buffer>((resolve, reject) => {
        stream.once('error', reject);
        stream.once('readable', () => resolve(stream.read() as Buffer));
      });
      assert.ok(first.length > 0);
      // Give the source every chance to push more than it should while nobody reads.
      await new Promise((resolve) => setTimeout(resolve, 300));
      t.diagnostic(`buffered while paused: ${stream.readableLength} bytes of ${size}`);
      assert.ok(stream.readableLength <= 2 * MiB, `buffered ${stream.readableLength} bytes of ${size} while paused`);
      const rest = await digest(stream);
      assert.equal(first.length + rest.bytes, size);
    });

    it('a large put holds bounded memory: the body is pulled as the driver writes, not read ahead', async (t) => {
      const key = `${fresh()}/flat.bin`;
      const size = LARGE_PUT_BYTES;
      const gc = gcFunction();
      gc();
      const baseline = process.memoryUsage().arrayBuffers;
      let peak = 0;
      const body = patternStream(size, 5, (produced) => {
        if (produced % (4 * MiB) === 0) {
          gc();
          peak = Math.max(peak, process.memoryUsage().arrayBuffers - baseline);
        }
      });
      const result = await storage.put(key, body);
      assert.equal(result.bytes, size);
      t.diagnostic(`peak buffer memory during a ${size / MiB} MiB put: ${(peak / MiB).toFixed(1)} MiB`);
      assert.ok(peak < subject.putMemoryBound, `peak buffer memory ${(peak / MiB).toFixed(1)} MiB for a ${size / MiB} MiB body`);
      await storage.delete(key);
    });

    it('a body that fails midway rejects with its own error and leaves nothing under the key', async () => {
      const base = fresh();
      const key = `${base}/broken.bin`;
      const boom = new Error('producer died');
      await assert.rejects(storage.put(key, failingBody(7 * MiB, boom)), (error) => error === boom);
      assert.equal(await storage.head(key), undefined);
      assert.deepEqual(await keysOf(storage, `${base}/`), []);
      await assert.rejects(storage.get(key), (error) => isPmsError(error, 'PMS_ERR_NOT_FOUND'));
      await subject.assertNoDebris?.();
    });

    it('a failed overwrite keeps the previous object intact', async () => {
      const key = `${fresh()}/kept.txt`;
      await storage.putBytes(key, 'version 1', { metadata: { generation: '1' } });
      await assert.rejects(storage.put(key, failingBody(MiB, new Error('nope'))));
      assert.equal((await storage.getBytes(key)).toString(), 'version 1');
      assert.deepEqual((await storage.head(key))?.metadata, { generation: '1' });
    });

    it('an aborted put rejects with PMS_ERR_ABORTED and stores nothing', async () => {
      const key = `${fresh()}/aborted.bin`;
      const controller = new AbortController();
      const body = patternStream(64 * MiB, 9, (produced) => {
        if (produced >= 6 * MiB) controller.abort();
      });
      await assert.rejects(storage.put(key, body, { signal: controller.signal }), (error) => isPmsError(error, 'PMS_ERR_ABORTED'));
      assert.equal(await storage.head(key), undefined);
    });

    it('ifAbsent writes a new key once and then refuses with PMS_ERR_TARGET_EXISTS, leaving it unchanged', async () => {
      const key = `${fresh()}/lock`;
      await storage.putBytes(key, 'first', { ifAbsent: true, metadata: { owner: 'a' } });
      await assert.rejects(storage.putBytes(key, 'second', { ifAbsent: true, metadata: { owner: 'b' } }), (error) =>
        isPmsError(error, 'PMS_ERR_TARGET_EXISTS'),
      );
      assert.equal((await storage.getBytes(key)).toString(), 'first');
      assert.deepEqual((await storage.head(key))?.metadata, { owner: 'a' });
    });

    it('concurrent ifAbsent puts of one key: exactly one wins', async (t) => {
      if (!subject.atomicIfAbsent) {
        t.skip('this backend ignores If-None-Match (s3rver); the race is documented in docs/storage.md');
        return;
      }
      const key = `${fresh()}/race`;
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) => storage.putBytes(key, `writer ${i}`, { ifAbsent: true })),
      );
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected' && isPmsError(r.reason, 'PMS_ERR_TARGET_EXISTS'));
      assert.equal(won.length, 1);
      assert.equal(lost.length, 7);
    });

    it('list returns keys in byte order, filtered by a plain string prefix', async () => {
      const base = fresh();
      const keys = ['a/b', 'a-b', 'ab', 'a/a/c', 'b', 'a/z', 'A'];
      for (const key of keys) await storage.putBytes(`${base}/${key}`, key);
      const sorted = keys.map((k) => `${base}/${k}`).sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
      const inOrder = subject.listsInByteOrder
        ? (keys: string[]) => keys
        : (keys: string[]) => [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
      assert.deepEqual(inOrder(await keysOf(storage, `${base}/`)), sorted);
      assert.deepEqual(inOrder(await keysOf(storage, `${base}/a/`)), [`${base}/a/a/c`, `${base}/a/b`, `${base}/a/z`]);
      assert.deepEqual(inOrder(await keysOf(storage, `${base}/a`)), [
        `${base}/a-b`,
        `${base}/a/a/c`,
        `${base}/a/b`,
        `${base}/a/z`,
        `${base}/ab`,
      ]);
      assert.deepEqual(await keysOf(storage, `${base}/nothing/`), []);
      const infos = [];
      for await (const info of storage.list(`${base}/a/a`)) infos.push(info);
      assert.equal(infos.length, 1);
      assert.equal(infos[0]?.bytes, 5);
      assert.ok(infos[0]?.modifiedAt instanceof Date);
    });

    it('head returns size, time and metadata; an overwrite replaces the metadata', async () => {
      const key = `${fresh()}/meta.json`;
      const before = Date.now();
      await storage.putBytes(key, '{"a":1}', { metadata: { sha256: 'abc123', 'pms-format': 'v1' } });
      const info = await storage.head(key);
      assert.equal(info?.key, key);
      assert.equal(info?.bytes, 7);
      assert.deepEqual(info?.metadata, { sha256: 'abc123', 'pms-format': 'v1' });
      assert.ok(info !== undefined && info.modifiedAt.getTime() >= before - 2000);
      await storage.putBytes(key, '{}');
      assert.deepEqual((await storage.head(key))?.metadata, {});
      await assert.rejects(storage.putBytes(key, 'x', { metadata: { Upper: 'x' } }), (error) => isPmsError(error, 'PMS_ERR_USAGE'));
    });

    it('delete removes the object, and deleting an absent key succeeds', async () => {
      const key = `${fresh()}/gone`;
      await storage.putBytes(key, 'x', { metadata: { a: 'b' } });
      await storage.delete(key);
      assert.equal(await storage.head(key), undefined);
      await storage.delete(key);
      await storage.putBytes(key, 'y');
      assert.deepEqual((await storage.head(key))?.metadata, {}, 'metadata of a deleted object must not come back');
    });

    it('a missing key: get rejects with PMS_ERR_NOT_FOUND, head resolves undefined', async () => {
      const key = `${fresh()}/missing`;
      await assert.rejects(storage.get(key), (error) => isPmsError(error, 'PMS_ERR_NOT_FOUND'));
      await assert.rejects(storage.getBytes(key), (error) => isPmsError(error, 'PMS_ERR_NOT_FOUND'));
      assert.equal(await storage.head(key), undefined);
    });

    it('keys that could escape or change meaning are rejected with PMS_ERR_USAGE', async () => {
      for (const key of ['', '/abs', '../up', 'a/../b', 'a//b', 'a/', './a', 'a\\b', '.pms-tmp-x', 'a/.pms-meta/b']) {
        await assert.rejects(storage.putBytes(key, 'x'), (error) => isPmsError(error, 'PMS_ERR_USAGE'), `key ${JSON.stringify(key)}`);
        await assert.rejects(storage.head(key), (error) => isPmsError(error, 'PMS_ERR_USAGE'), `key ${JSON.stringify(key)}`);
      }
    });

    it('probe writes and removes a probe object without leaving it listed', async () => {
      await storage.probe();
      for await (const info of storage.list('')) assert.ok(!info.key.includes('.pms-probe'), info.key);
    });

    it('location names the repository without credentials', () => {
      assert.ok(/^(file|s3|memory):\/\//.test(storage.location), storage.location);
      assert.ok(!/S3RVER:|@/.test(storage.location));
    });
  });
}
