import { strict as assert } from 'node:assert';
import { inspect } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Secret } from '../../config/secret.js';
import { isPmsError } from '../../errors/catalogue.js';
import { type S3rverHarness, startS3rver } from '../../testing/s3rver-harness.js';
import { describeStorageContract } from '../../testing/storage-contract.js';
import { S3Storage } from './s3-storage.js';

const MiB = 1024 * 1024;
// Smallest part S3 allows, so multipart paths run with test-sized objects.
const TEST_TUNING = { partSize: 5 * MiB, queueSize: 2, maxAttempts: 2, connectionTimeoutMs: 2_000 };

describeStorageContract('S3Storage (s3rver)', async () => {
  const s3 = await startS3rver();
  const storage = new S3Storage(settingsOf(s3, 'contract'), TEST_TUNING);
  return {
    storage,
    // (queueSize + 2) x partSize, plus slack for the SDK's own buffers.
    putMemoryBound: (TEST_TUNING.queueSize + 2) * TEST_TUNING.partSize + 12 * MiB,
    atomicIfAbsent: false,
    listsInByteOrder: false,
    dispose: async () => {
      await storage.close();
      await s3.destroy();
    },
  };
});

function never(): never {
  throw new Error('harness returned a non-S3 repository');
}

function settingsOf(s3: S3rverHarness, prefix = '') {
  const repository = s3.repository(prefix);
  if (repository.kind !== 's3') never();
  return repository.s3;
}

describe('S3Storage against a real s3rver', () => {
  let s3: S3rverHarness;
  before(async () => {
    s3 = await startS3rver({ bucket: 'pms-faults' });
  });
  after(async () => {
    await s3?.destroy();
  });

  it('stores keys under the URL prefix, invisible to a repository with another prefix', async () => {
    const prefixed = new S3Storage(settingsOf(s3, 'site-a/pms'), TEST_TUNING);
    const whole = new S3Storage(settingsOf(s3), TEST_TUNING);
    const other = new S3Storage(settingsOf(s3, 'site-b'), TEST_TUNING);
    try {
      await prefixed.putBytes('backups/x/manifest.json', '{}');
      const keys: string[] = [];
      for await (const info of whole.list('site-a/')) keys.push(info.key);
      assert.deepEqual(keys, ['site-a/pms/backups/x/manifest.json']);
      assert.equal(await other.head('backups/x/manifest.json'), undefined);
      assert.equal(prefixed.location, 's3://pms-faults/site-a/pms');
    } finally {
      await Promise.all([prefixed.close(), whole.close(), other.close()]);
    }
  });

  it('an endpoint that is down fails with PMS_ERR_REPO_UNAVAILABLE naming it, and works again when it is back', async (t) => {
    const storage = new S3Storage(settingsOf(s3), TEST_TUNING);
    try {
      await storage.putBytes('before', 'x');
      await s3.down();
      const started = Date.now();
      for (const attempt of [
        () => storage.head('before'),
        () => storage.putBytes('during', 'x'),
        () => storage.probe(),
        () => storage.get('before'),
      ]) {
        await assert.rejects(attempt(), (error) => {
          assert.ok(isPmsError(error, 'PMS_ERR_REPO_UNAVAILABLE'), String(error));
          assert.ok(error.message.includes(s3.endpoint) && error.message.includes('pms-faults'), error.message);
          return true;
        });
      }
      t.diagnostic(`four operations against a down endpoint failed in ${Date.now() - started} ms`);
      await s3.up();
      assert.equal((await storage.getBytes('before')).toString(), 'x');
    } finally {
      await s3.up();
      await storage.close();
    }
  });

  it('an unknown access key is PMS_ERR_REPO_ACCESS and no credential appears in the error', async () => {
    const storage = new S3Storage(
      { ...settingsOf(s3), accessKeyId: new Secret('AKIAWRONGWRONGWRONG1'), secretAccessKey: new Secret('very-secret-value-123') },
      TEST_TUNING,
    );
    try {
      await assert.rejects(storage.putBytes('x', 'y'), (error) => {
        assert.ok(isPmsError(error, 'PMS_ERR_REPO_ACCESS'), String(error));
        const shown = `${error.message} ${JSON.stringify(error.toJSON())} ${inspect(error.details)}`;
        assert.ok(!shown.includes('very-secret-value-123') && !shown.includes('AKIAWRONG'), shown);
        return true;
      });
      await assert.rejects(storage.head('x'), (error) => isPmsError(error, 'PMS_ERR_REPO_ACCESS'));
    } finally {
      await storage.close();
    }
  });

  it('a bucket that does not exist is reported as such, not as a missing object', async () => {
    const storage = new S3Storage({ ...settingsOf(s3), bucket: 'no-such-bucket' }, TEST_TUNING);
    try {
      for (const attempt of [() => storage.head('x'), () => storage.get('x'), () => storage.putBytes('x', 'y')]) {
        await assert.rejects(attempt(), (error) => {
          assert.ok(isPmsError(error, 'PMS_ERR_REPO_UNAVAILABLE'), String(error));
          assert.match(error.message, /bucket no-such-bucket does not exist/);
          return true;
        });
      }
    } finally {
      await storage.close();
    }
  });

  it('removeIncomplete reports that s3rver cannot list multipart uploads instead of claiming success', async () => {
    const storage = new S3Storage(settingsOf(s3), TEST_TUNING);
    try {
      await assert.rejects(
        storage.removeIncomplete(new Date()),
        (error) => isPmsError(error, 'PMS_ERR_REPO_ACCESS') && /does not support/.test(error.message),
      );
    } finally {
      await storage.close();
    }
  });

  it('a part size below the S3 minimum is refused at construction', () => {
    assert.throws(
      () => new S3Storage(settingsOf(s3), { partSize: MiB }),
      (error) => isPmsError(error, 'PMS_ERR_CONFIG'),
    );
  });
});
