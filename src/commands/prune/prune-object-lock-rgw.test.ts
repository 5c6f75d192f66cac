import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ListObjectVersionsCommand, type S3Client } from '@aws-sdk/client-s3';
import type { ObjectLockSettings } from '../../config/config.js';
import { type SigningKey, type TrustPolicy, loadSigningKey, loadTrustedSigners } from '../../crypto/signing.js';
import { backupPrefix, baseBackupKey, manifestKey } from '../../repository/layout.js';
import { WAL_SUFFIX, timelinePrefix } from '../../repository/wal-layout.js';
import { S3Storage } from '../../storage/s3/s3-storage.js';
import { type CephRgwHarness, startCephRgw } from '../../testing/ceph-rgw-harness.js';
import { type GpgKeyPair, generateGpgKeyPair } from '../../testing/gpg-keys.js';
import { storeBaseBackupFixture } from '../../testing/manifest-fixture.js';
import { runCli } from '../../testing/run-cli.js';
import { pruneBackups } from './prune-backups.js';

const DAY_MS = 24 * 3600 * 1000;

function walKey(segment: string): string {
  return `${timelinePrefix(Number.parseInt(segment.slice(0, 8), 16))}${segment}${WAL_SUFFIX}`;
}

async function versionsUnder(client: S3Client, bucket: string, prefix: string): Promise<number> {
  const listed = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix }));
  return (listed.Versions?.length ?? 0) + (listed.DeleteMarkers?.length ?? 0);
}

describe('prune in an S3 Object Lock bucket (Ceph RGW)', () => {
  let rgw: CephRgwHarness;
  let owner: S3Client;
  let keys: GpgKeyPair;
  let signer: SigningKey;
  let trust: TrustPolicy;
  const logDir = mkdtempSync(join(tmpdir(), 'pms-prune-lock-'));
  before(async () => {
    [rgw, keys] = await Promise.all([startCephRgw(), generateGpgKeyPair({ name: 'PMS Prune Lock Test' })]);
    owner = rgw.client();
    signer = await loadSigningKey(keys.privateKeyFile, keys.passphraseFile);
    trust = { trusted: await loadTrustedSigners(keys.publicKeyFile) };
  });
  after(async () => {
    await rgw?.destroy();
    keys?.remove();
    rmSync(logDir, { recursive: true, force: true });
  });

  it('deletes every version of what retention allows, keeps what the lock still holds whole, reports it, and does not fail', async () => {
    const bucket = 'pms-prune-lock';
    await rgw.createBucket(bucket, { objectLock: true });
    const storageWith = (objectLock: ObjectLockSettings): S3Storage => new S3Storage(rgw.settings(bucket, { objectLock }));
    const long = storageWith({ mode: 'COMPLIANCE', days: 1 });
    // Retention that has passed by the time prune runs (the configuration allows whole days only).
    const short = storageWith({ mode: 'COMPLIANCE', days: 2 / 86_400 });
    try {
      const held = await storeBaseBackupFixture(long, signer, new Date('2020-01-01T01:00:00Z'), '000000010000000000000002');
      const expired = await storeBaseBackupFixture(short, signer, new Date('2020-01-02T01:00:00Z'), '000000010000000000000004');
      const newest = await storeBaseBackupFixture(long, signer, new Date(), '000000010000000000000006');
      await short.putBytes(walKey('000000010000000000000001'), 'old WAL, retention over');
      await long.putBytes(walKey('000000020000000000000001'), 'old WAL, still held');
      await long.putBytes(walKey('000000010000000000000003'), 'WAL the held backup needs');
      await sleep(2_500);

      const result = await pruneBackups(long, trust, 30, { dryRun: false });
      const decision = (id: string) => result.decisions.find((d) => d.id === id);
      assert.equal(decision(held)?.action, 'delete');
      const until = Date.parse(decision(held)?.lockedUntil ?? '');
      assert.ok(until > Date.now() + DAY_MS - 120_000, `held until ${decision(held)?.lockedUntil}`);
      assert.equal(decision(expired)?.action, 'delete');
      assert.equal(decision(expired)?.lockedUntil, undefined);
      assert.equal(decision(newest)?.action, 'keep');
      assert.deepEqual([result.deleted, result.locked, result.kept], [1, 1, 1]);

      // The held backup is untouched and still complete; the expired one has no version left.
      assert.ok(await long.head(manifestKey(held)));
      assert.ok(await long.head(baseBackupKey(held)));
      assert.equal(await versionsUnder(owner, bucket, backupPrefix(expired)), 0);

      // WAL older than the oldest base backup still there (the held one) goes where the lock allows.
      assert.equal(result.walKeptFrom, '000000010000000000000002');
      assert.deepEqual([result.walDeleted, result.walLocked], [1, 1]);
      assert.ok(Date.parse(result.walLockedUntil ?? '') > Date.now() + DAY_MS - 120_000);
      assert.equal(await versionsUnder(owner, bucket, walKey('000000010000000000000001')), 0);
      assert.equal((await long.getBytes(walKey('000000020000000000000001'))).toString(), 'old WAL, still held');
      assert.ok(await long.head(walKey('000000010000000000000003')));

      // The CLI says so and exits 0; a second run is the same (nothing more it may delete).
      const env = {
        ...rgw.env(bucket),
        BACKUP_S3_OBJECT_LOCK_MODE: 'compliance',
        BACKUP_S3_OBJECT_LOCK_DAYS: '1',
        BACKUP_RETENTION_DAYS: '30',
        BACKUP_LOG_DIR: logDir,
        BACKUP_SIGNING_KEY_FILE: keys.privateKeyFile,
        ...(keys.passphraseFile ? { BACKUP_SIGNING_PASSPHRASE_FILE: keys.passphraseFile } : {}),
        BACKUP_TRUSTED_SIGNERS_FILE: keys.publicKeyFile,
      };
      const cli = await runCli('pms-backup', ['prune'], env);
      assert.equal(cli.code, 0, cli.stderr);
      assert.match(cli.stdout, new RegExp(`^locked {7}${held} base {5}older than 30 days; Object Lock retains it until \\d{4}-`, 'm'));
      assert.match(
        cli.stdout,
        /0 to delete, 1 kept, 1 held by Object Lock \(deleted by a later prune\), 0 B freed; WAL: 0 file\(s\) deleted, 1 held by Object Lock until /,
      );
    } finally {
      await Promise.all([long.close(), short.close()]);
    }
  });
});
