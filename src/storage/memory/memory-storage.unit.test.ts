import { strict as assert } from 'node:assert';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { isPmsError } from '../../errors/catalogue.js';
import type { ObjectInfo } from '../storage.js';
import { LARGE_PUT_BYTES, describeStorageContract } from '../../testing/storage-contract.js';
import { MemoryStorage } from './memory-storage.js';

const MiB = 1024 * 1024;

describeStorageContract('MemoryStorage', async () => {
  const storage = new MemoryStorage({ name: 'contract' });
  return {
    storage,
    // It holds every object whole, so a put holds its body; the check is that it holds nothing more.
    putMemoryBound: LARGE_PUT_BYTES + 8 * MiB,
    atomicIfAbsent: true,
    listsInByteOrder: true,
    assertNoDebris: async () => assert.equal(storage.incompletePuts, 0),
    dispose: async () => storage.close(),
  };
});

/** A body that yields one chunk and then waits for `release` (a writer still running, or killed). */
function stalledBody(): { body: Readable; release: () => void } {
  let sent = false;
  let released = false;
  let finish: (() => void) | undefined;
  const body = new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(Buffer.from('first part '));
        return;
      }
      finish = () => {
        this.push(Buffer.from('last part'));
        this.push(null);
      };
      if (released) finish();
    },
  });
  return {
    body,
    release: () => {
      released = true;
      finish?.();
    },
  };
}

async function listed(storage: MemoryStorage, prefix: string): Promise<ObjectInfo[]> {
  const infos: ObjectInfo[] = [];
  for await (const info of storage.list(prefix)) infos.push(info);
  return infos;
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

describe('MemoryStorage', () => {
  it('an object is invisible to head, get and list until its body has ended', async () => {
    const storage = new MemoryStorage();
    const { body, release } = stalledBody();
    const putting = storage.put('backups/x/data', body);
    await until(() => storage.incompletePuts === 1);
    assert.equal(await storage.head('backups/x/data'), undefined);
    await assert.rejects(storage.get('backups/x/data'), (error) => isPmsError(error, 'PMS_ERR_NOT_FOUND'));
    assert.deepEqual(await listed(storage, 'backups/'), []);
    release();
    assert.deepEqual(await putting, { key: 'backups/x/data', bytes: 20 });
    assert.equal((await storage.getBytes('backups/x/data')).toString(), 'first part last part');
    assert.equal(storage.incompletePuts, 0);
  });

  it('removeIncomplete removes only puts started before the cut-off, and the removed writer fails storing nothing', async () => {
    let now = new Date('2026-01-10T02:00:00Z');
    const storage = new MemoryStorage({ now: () => now });
    const killed = stalledBody();
    const abandoned = storage.put('backups/old/data', killed.body);
    await until(() => storage.incompletePuts === 1);
    now = new Date('2026-01-10T03:00:00Z');
    const running = stalledBody();
    const recent = storage.put('backups/new/data', running.body);
    await until(() => storage.incompletePuts === 2);

    assert.equal(await storage.removeIncomplete(new Date('2026-01-10T02:30:00Z')), 1);
    assert.equal(storage.incompletePuts, 1);
    killed.release();
    await assert.rejects(abandoned, (error) => isPmsError(error, 'PMS_ERR_NOT_FOUND'));
    assert.equal(await storage.head('backups/old/data'), undefined);

    running.release();
    assert.equal((await recent).bytes, 20);
    assert.equal((await storage.head('backups/new/data'))?.modifiedAt.toISOString(), '2026-01-10T03:00:00.000Z');
  });

  it('stored bytes are copies: changing the caller buffer after a put or a chunk after a get leaves the object unchanged', async () => {
    const storage = new MemoryStorage();
    const source = Buffer.from('original');
    await storage.put('k', Readable.from([source]));
    source.fill(0x78);
    const chunk = (await storage.get('k')).read() as Buffer;
    chunk.fill(0x79);
    assert.equal((await storage.getBytes('k')).toString(), 'original');
  });

  it('a reader keeps the version it opened when the key is overwritten while it reads', async () => {
    const storage = new MemoryStorage();
    await storage.putBytes('k', Buffer.alloc(256 * 1024, 0x61));
    const reading = await storage.get('k');
    await storage.putBytes('k', 'replacement');
    const bytes = Buffer.concat(await reading.toArray());
    assert.equal(bytes.length, 256 * 1024);
    assert.ok(bytes.every((b) => b === 0x61));
    assert.equal((await storage.getBytes('k')).toString(), 'replacement');
  });

  it('listings carry no metadata, as on S3; head does', async () => {
    const storage = new MemoryStorage();
    await storage.putBytes('a', 'x', { metadata: { sha256: 'abc' } });
    const [info] = await listed(storage, '');
    assert.deepEqual(info?.metadata, {});
    assert.deepEqual((await storage.head('a'))?.metadata, { sha256: 'abc' });
  });

  it('a get aborted by its signal ends the stream with an AbortError', async () => {
    const storage = new MemoryStorage();
    await storage.putBytes('k', Buffer.alloc(MiB));
    const controller = new AbortController();
    const stream = await storage.get('k', { signal: controller.signal });
    stream.read();
    controller.abort();
    await assert.rejects(stream.toArray(), (error) => (error as Error).name === 'AbortError');
  });

  it('location is memory://<name> and each instance is its own repository', async () => {
    const a = new MemoryStorage({ name: 'site-a' });
    const b = new MemoryStorage({ name: 'site-b' });
    await a.putBytes('k', 'x');
    assert.equal(a.location, 'memory://site-a');
    assert.equal(await b.head('k'), undefined);
  });
});
