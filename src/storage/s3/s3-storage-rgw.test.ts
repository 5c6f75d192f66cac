import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { HeadObjectCommand, ListMultipartUploadsCommand, ListObjectVersionsCommand, type S3Client } from '@aws-sdk/client-s3';
import type { ObjectLockSettings } from '../../config/config.js';
import { isPmsError } from '../../errors/catalogue.js';
import { type CephRgwHarness, startCephRgw } from '../../testing/ceph-rgw-harness.js';
import { describeStorageContract, patternStream } from '../../testing/storage-contract.js';
import { S3Storage } from './s3-storage.js';

const MiB = 1024 * 1024;
const TEST_TUNING = { partSize: 5 * MiB, queueSize: 2, maxAttempts: 2, connectionTimeoutMs: 2_000 };
const DAY_MS = 24 * 3600 * 1000;

// One cluster for the whole file (start-up ~2 s), one bucket per suite or test.
let cluster: Promise<CephRgwHarness> | undefined;
function rgw(): Promise<CephRgwHarness> {
  cluster ??= startCephRgw();
  return cluster;
}
after(async () => {
  await (await cluster)?.destroy();
});

let buckets = 0;
async function bucket(kind: 'plain' | 'versioned' | 'lock'): Promise<string> {
  const harness = await rgw();
  const name = `pms-${kind}-${++buckets}`;
  await harness.createBucket(name, { versioned: kind === 'versioned', objectLock: kind === 'lock' });
  return name;
}

async function noUploadsLeft(client: S3Client, name: string): Promise<void> {
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: name }));
  assert.deepEqual(uploads.Uploads ?? [], [], 'no multipart upload left behind');
}

function contractOn(kind: 'plain' | 'lock', title: string): void {
  describeStorageContract(`S3Storage (Ceph RGW, ${title})`, async () => {
    const harness = await rgw();
    const name = await bucket(kind);
    const objectLock: ObjectLockSettings | undefined = kind === 'lock' ? { mode: 'COMPLIANCE', days: 1 } : undefined;
    const storage = new S3Storage(harness.settings(name, { objectLock }), TEST_TUNING);
    const client = harness.client();
    return {
      storage,
      putMemoryBound: (TEST_TUNING.queueSize + 2) * TEST_TUNING.partSize + 12 * MiB,
      // RGW enforces If-None-Match in an unversioned bucket; in a versioned one it ignores it
      // and the driver's version check (#claim) has to make exactly one writer win.
      atomicIfAbsent: true,
      listsInByteOrder: true,
      assertNoDebris: () => noUploadsLeft(client, name),
      dispose: () => storage.close(),
    };
  });
}

contractOn('plain', 'unversioned bucket');
contractOn('lock', 'Object Lock bucket, COMPLIANCE 1 day');

describe('S3Storage on Ceph RGW: write-once, Object Lock, purge', () => {
  let harness: CephRgwHarness;
  let owner: S3Client;
  before(async () => {
    harness = await rgw();
    owner = harness.client();
  });

  const storageOn = (name: string, objectLock?: ObjectLockSettings): S3Storage =>
    new S3Storage(harness.settings(name, { objectLock }), TEST_TUNING);

  it('the harness: start-up time, and a user created with given keys works with exactly those keys', async (t) => {
    t.diagnostic(`start-up ${harness.startupMs} ms, steps ${JSON.stringify(harness.startupSteps)}`);
    const keys = { accessKeyId: 'PMSTESTGIVENKEY00001', secretAccessKey: 'given-secret-of-a-throwaway-test-cluster' };
    const user = await harness.createUser('pms-given-keys', keys);
    assert.deepEqual([user.accessKeyId, user.secretAccessKey], [keys.accessKeyId, keys.secretAccessKey]);
    const name = await bucket('plain');
    await harness.createBucket(`${name}-own`, { owner: user });
    const storage = new S3Storage(harness.settings(`${name}-own`, { user }), TEST_TUNING);
    try {
      await storage.putBytes('x', 'y');
      assert.equal((await storage.getBytes('x')).toString(), 'y');
    } finally {
      await storage.close();
    }
  });

  for (const kind of ['plain', 'versioned'] as const) {
    it(`${kind} bucket: concurrent ifAbsent puts leave exactly one winner, and every reader sees the winner's bytes`, async () => {
      const name = await bucket(kind);
      const writers = Array.from({ length: 6 }, () => storageOn(name));
      try {
        const results = await Promise.allSettled(
          writers.map((w, i) => w.putBytes('locks/repository.lock', `writer ${i}`, { ifAbsent: true, metadata: { writer: String(i) } })),
        );
        const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
        const lost = results.filter((r) => r.status === 'rejected' && isPmsError(r.reason, 'PMS_ERR_TARGET_EXISTS'));
        assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
        assert.equal(lost.length, 5);
        const winner = won[0];
        for (const w of writers) {
          assert.equal((await w.getBytes('locks/repository.lock')).toString(), `writer ${winner}`);
          assert.deepEqual((await w.head('locks/repository.lock'))?.metadata, { writer: String(winner) });
        }
      } finally {
        await Promise.all(writers.map((w) => w.close()));
      }
    });
  }

  it('versioned bucket: after a delete the key can be claimed again by exactly one writer (a delete marker ends its life)', async () => {
    const name = await bucket('versioned');
    const writers = Array.from({ length: 4 }, () => storageOn(name));
    try {
      await writers[0]?.putBytes('wal/system.json', 'first life', { ifAbsent: true });
      await writers[0]?.delete('wal/system.json');
      const results = await Promise.allSettled(
        writers.map((w, i) => w.putBytes('wal/system.json', `second life ${i}`, { ifAbsent: true })),
      );
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(won.length, 1, JSON.stringify(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))));
      assert.equal((await writers[1]?.getBytes('wal/system.json'))?.toString(), `second life ${won[0]}`);
    } finally {
      await Promise.all(writers.map((w) => w.close()));
    }
  });

  for (const kind of ['plain', 'versioned'] as const) {
    it(`${kind} bucket: a multipart ifAbsent put fails when the key appears while its parts are sent (RGW ignores If-None-Match on completion)`, async () => {
      const name = await bucket(kind);
      const slow = storageOn(name);
      const other = storageOn(name);
      try {
        const body = new PassThrough();
        const put = slow.put('backups/x/manifest.json', body, { ifAbsent: true });
        const rejected = assert.rejects(put, (error) => isPmsError(error, 'PMS_ERR_TARGET_EXISTS'));
        body.write(Buffer.alloc(6 * MiB, 1)); // more than one part: a multipart upload has begun
        await sleep(300);
        await other.putBytes('backups/x/manifest.json', 'created meanwhile');
        body.end(Buffer.alloc(MiB, 2));
        await rejected;
        assert.equal((await other.getBytes('backups/x/manifest.json')).toString(), 'created meanwhile');
        await noUploadsLeft(owner, name);
      } finally {
        await Promise.all([slow.close(), other.close()]);
      }
    });
  }

  it('Object Lock: every version is stored with its retention, single part and multipart alike', async () => {
    const name = await bucket('lock');
    const storage = storageOn(name, { mode: 'GOVERNANCE', days: 3 });
    try {
      const before = Date.now();
      await storage.putBytes('small', 'x');
      await storage.put('big', patternStream(12 * MiB, 4));
      for (const key of ['small', 'big']) {
        const head = await owner.send(new HeadObjectCommand({ Bucket: name, Key: key }));
        assert.equal(head.ObjectLockMode, 'GOVERNANCE', key);
        const until = head.ObjectLockRetainUntilDate?.getTime() ?? 0;
        assert.ok(
          until >= before + 3 * DAY_MS && until <= Date.now() + 3 * DAY_MS,
          `${key} retained until ${head.ObjectLockRetainUntilDate?.toISOString()}`,
        );
      }
    } finally {
      await storage.close();
    }
  });

  it('Object Lock: purge leaves a retained object readable and says until when; a plain delete hides it but the data stays', async () => {
    const name = await bucket('lock');
    const storage = storageOn(name, { mode: 'COMPLIANCE', days: 1 });
    try {
      await storage.putBytes('backups/a/manifest.json', 'kept');
      const result = await storage.delete('backups/a/manifest.json', { purge: true });
      assert.equal(result.retained?.legalHold, false);
      assert.ok((result.retained?.until?.getTime() ?? 0) > Date.now() + DAY_MS - 60_000, String(result.retained?.until));
      assert.equal((await storage.getBytes('backups/a/manifest.json')).toString(), 'kept');

      assert.deepEqual(await storage.delete('backups/a/manifest.json'), {});
      assert.equal(await storage.head('backups/a/manifest.json'), undefined);
      const versions = await owner.send(new ListObjectVersionsCommand({ Bucket: name, Prefix: 'backups/a/' }));
      assert.equal(versions.Versions?.length, 1, 'the locked version is still stored');
      assert.equal(versions.DeleteMarkers?.length, 1);
    } finally {
      await storage.close();
    }
  });

  it('Object Lock: once retention has passed, purge deletes every version and delete marker of the key', async () => {
    const name = await bucket('lock');
    // Two seconds: the configuration only allows whole days, the driver takes any duration.
    const storage = storageOn(name, { mode: 'COMPLIANCE', days: 2 / 86_400 });
    try {
      await storage.putBytes('wal/00000001/seg', 'v1');
      await storage.putBytes('wal/00000001/seg', 'v2');
      await storage.delete('wal/00000001/seg');
      await storage.putBytes('wal/00000001/seg', 'v3');
      assert.ok((await storage.delete('wal/00000001/seg', { purge: true })).retained !== undefined, 'still retained at first');
      await sleep(2_500);
      assert.deepEqual(await storage.delete('wal/00000001/seg', { purge: true }), {});
      const versions = await owner.send(new ListObjectVersionsCommand({ Bucket: name, Prefix: 'wal/' }));
      assert.deepEqual([...(versions.Versions ?? []), ...(versions.DeleteMarkers ?? [])], []);
      assert.deepEqual(await storage.delete('wal/00000001/seg', { purge: true }), {}, 'purging an absent key is not an error');
    } finally {
      await storage.close();
    }
  });

  it('Object Lock: probe leaves no version behind', async () => {
    const name = await bucket('lock');
    const storage = storageOn(name, { mode: 'COMPLIANCE', days: 1 });
    try {
      await storage.probe();
      await storage.probe();
      const versions = await owner.send(new ListObjectVersionsCommand({ Bucket: name }));
      assert.deepEqual([...(versions.Versions ?? []), ...(versions.DeleteMarkers ?? [])], []);
    } finally {
      await storage.close();
    }
  });
});
