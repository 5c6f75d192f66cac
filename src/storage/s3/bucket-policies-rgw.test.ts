/**
 * The per-role policies in deploy/s3/ applied for real: Ceph RGW enforces bucket policies, and a
 * user there has no access to another user's bucket (or objects) except what the policy
 * grants, so each role can do exactly what its statements say. Each role does its job through
 * the repository code it runs in production, and is refused outside it.
 */
import { strict as assert } from 'node:assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ListObjectVersionsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { loadRecipients } from '../../crypto/keys.js';
import { type SigningKey, type TrustPolicy, loadSigningKey, loadTrustedSigners } from '../../crypto/signing.js';
import { isPmsError } from '../../errors/catalogue.js';
import { pushWalFile } from '../../commands/wal-push/push-wal-file.js';
import { pruneBackups } from '../../commands/prune/prune-backups.js';
import { appendAudit, currentActor, verifyAudit } from '../../repository/audit-log.js';
import { observeRecipientKeys } from '../../repository/key-observer.js';
import { backupPrefix, baseBackupKey, manifestKey } from '../../repository/layout.js';
import { usingRepositoryLock } from '../../repository/repository-lock.js';
import { writeVerification } from '../../repository/verification-record.js';
import { claimArchive } from '../../repository/wal-identity.js';
import { WAL_SYSTEM_KEY } from '../../repository/wal-layout.js';
import { type CephRgwHarness, type RgwUser, startCephRgw } from '../../testing/ceph-rgw-harness.js';
import { type GpgKeyPair, generateGpgKeyPair } from '../../testing/gpg-keys.js';
import { REPO_ROOT } from '../../testing/run-cli.js';
import { storeBaseBackupFixture } from '../../testing/manifest-fixture.js';
import { patternStream } from '../../testing/storage-contract.js';
import { S3Storage } from './s3-storage.js';

const MiB = 1024 * 1024;
const BUCKET = 'pms-policy-test';
const ROLES = ['wal-writer', 'backup-writer', 'prune'] as const;
type Role = (typeof ROLES)[number];
const DEPLOYED_BUCKET = 'pms-production-backups';
const OLD_SEGMENT = 'wal/00000001/000000010000000000000001.zst.gpg';

interface Statement {
  readonly Sid: string;
  readonly Effect: 'Allow' | 'Deny';
  readonly Principal?: unknown;
  readonly Action: string | string[];
  readonly Resource: string | string[];
  readonly Condition?: unknown;
}

function policyFile(name: string): { Version: string; Id: string; Statement: Statement[] } {
  // The same substitution docs/s3-bucket.md makes with sed for another bucket name.
  return JSON.parse(readFileSync(join(REPO_ROOT, 'deploy', 's3', name), 'utf8').replaceAll(DEPLOYED_BUCKET, BUCKET));
}

/** RGW evaluates UploadPart as s3:PutObject, without the header: this guard refuses every multipart upload there. */
const AWS_ONLY_GUARD = 'DenyUploadWithoutSseHeader';

/**
 * One bucket policy as docs/s3-bucket.md assembles it for a store without IAM (Ceph RGW): the
 * bucket-wide guards of bucket-policy.json (but AWS_ONLY_GUARD), then each role's statements
 * with that role's user as Principal.
 */
function assembledPolicy(users: Record<Role, RgwUser>, options: { awsOnlyGuard?: boolean } = {}): unknown {
  const guards = policyFile('bucket-policy.json');
  const kept = guards.Statement.filter((s) => options.awsOnlyGuard || s.Sid !== AWS_ONLY_GUARD);
  assert.equal(kept.length, guards.Statement.length - (options.awsOnlyGuard ? 0 : 1), `bucket-policy.json has ${AWS_ONLY_GUARD}`);
  const roles = ROLES.flatMap((role) =>
    policyFile(`policy-${role}.json`).Statement.map((s) => ({ ...s, Principal: { AWS: [users[role].arn] } })),
  );
  return { ...guards, Statement: [...kept, ...roles] };
}

const refused = (error: unknown): boolean => isPmsError(error, 'PMS_ERR_REPO_ACCESS');

describe('deploy/s3 role policies on Ceph RGW: each role can do its job and nothing else', () => {
  let rgw: CephRgwHarness;
  let keys: GpgKeyPair;
  let signer: SigningKey;
  let trust: TrustPolicy;
  const storage = {} as Record<Role, S3Storage>;
  const users = {} as Record<Role, RgwUser>;
  // Two seconds of COMPLIANCE retention, so prune can be shown deleting (configuration allows whole days only).
  const objectLock = { mode: 'COMPLIANCE', days: 2 / 86_400 } as const;

  before(async () => {
    [rgw, keys] = await Promise.all([startCephRgw(), generateGpgKeyPair({ name: 'PMS Policy Test' })]);
    signer = await loadSigningKey(keys.privateKeyFile, keys.passphraseFile);
    trust = { trusted: await loadTrustedSigners(keys.publicKeyFile) };
    await rgw.createBucket(BUCKET, { objectLock: true });
    for (const role of ROLES) {
      users[role] = await rgw.createUser(`pms-${role}`);
      storage[role] = new S3Storage(rgw.settings(BUCKET, { user: users[role], objectLock }), { partSize: 5 * MiB, maxAttempts: 1 });
    }
    await rgw.putBucketPolicy(BUCKET, assembledPolicy(users));
  });
  after(async () => {
    await Promise.all(Object.values(storage).map((s) => s.close()));
    await rgw?.destroy();
    keys?.remove();
  });

  const historyFile = (): string => {
    const path = join(keys.dir, '00000002.history');
    writeFileSync(path, '1\t0/3000000\tno recovery target specified\n');
    return path;
  };

  it('wal-writer (the PostgreSQL pod) claims the archive and archives WAL, an identical re-push included', async () => {
    const wal = storage['wal-writer'];
    await claimArchive(wal, '7000000000000000001', signer, trust);
    await claimArchive(wal, '7000000000000000001', signer, trust); // the next segment's check
    const recipients = await loadRecipients(keys.publicKeyFile, keys.fingerprint);
    const context = { storage: wal, recipients, signer, trust };
    const first = await pushWalFile(context, historyFile());
    assert.equal(first.outcome, 'stored');
    assert.equal((await pushWalFile(context, historyFile())).outcome, 'already-archived');
    // A WAL segment stored raw (the push of a real segment is proved in wal-archive.test.ts).
    await wal.putBytes(OLD_SEGMENT, 'old segment');
  });

  let oldBackup: string;
  let newBackup: string;

  it('backup-writer (create, base-backup, verify, monitor) locks, writes multipart backups, signs, audits, verifies, probes and reads WAL', async () => {
    const jobs = storage['backup-writer'];
    await usingRepositoryLock(jobs, 'base-backup', async () => {
      await observeRecipientKeys(jobs, [keys.fingerprint], currentActor(undefined), signer);
      // Larger than a part: CreateMultipartUpload, UploadPart, the completion guard, PutObjectRetention.
      const tar = Buffer.alloc(7 * MiB, 7);
      oldBackup = await storeBaseBackupFixture(jobs, signer, new Date('2020-01-01T01:00:00Z'), '000000010000000000000002', tar);
      newBackup = await storeBaseBackupFixture(jobs, signer, new Date(), '000000010000000000000004', tar);
    });
    await appendAudit(
      jobs,
      {
        at: new Date().toISOString(),
        actor: currentActor(undefined),
        operation: 'base-backup',
        backupId: newBackup,
        outcome: 'success',
        details: {},
      },
      signer,
    );
    const verifiedAt = new Date().toISOString();
    await writeVerification(jobs, { id: newBackup, ok: true, checks: [], durationSeconds: 1, verifiedAt }, signer);
    await jobs.probe();
    assert.ok(await jobs.head(WAL_SYSTEM_KEY), 'reads what the PostgreSQL pod wrote');
    assert.equal((await jobs.getBytes(OLD_SEGMENT)).toString(), 'old segment');
  });

  it('wal-writer may not write outside wal/, read backups, delete WAL, or probe', async () => {
    // Let the writers' two-second retention pass: from here a refused delete is the policy's doing, not Object Lock's.
    await sleep(2_100);
    const wal = storage['wal-writer'];
    await assert.rejects(wal.getBytes(manifestKey(oldBackup)), refused);
    await assert.rejects(wal.putBytes('backups/20200101T000000Z-0000/manifest.json', '{}'), refused);
    await assert.rejects(wal.putBytes('audit/000000000001.json', '{}'), refused);
    await assert.rejects(wal.putBytes('locks/repository.lock', '{}'), refused);
    await assert.rejects(wal.delete(WAL_SYSTEM_KEY), refused);
    await assert.rejects(wal.delete(WAL_SYSTEM_KEY, { purge: true }), refused);
    await assert.rejects(wal.probe(), refused);
  });

  it('backup-writer may not write WAL nor delete backups, WAL or audit records (only prune deletes)', async () => {
    const jobs = storage['backup-writer'];
    const tar = baseBackupKey(oldBackup);
    await assert.rejects(jobs.putBytes('wal/00000001/000000010000000000000009.zst.gpg', 'x'), refused);
    await assert.rejects(jobs.delete(tar), refused);
    await assert.rejects(jobs.delete(tar, { purge: true }), refused);
    await assert.rejects(jobs.delete(OLD_SEGMENT), refused);
    await assert.rejects(jobs.delete('audit/000000000001.json'), refused);
    assert.ok(await jobs.head(tar), 'still there');
  });

  it('the bucket-wide guard applies to everyone, the bucket owner included: an upload asking for another encryption is refused', async () => {
    await assert.rejects(
      rgw.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: 'backups/kms', Body: 'x', ServerSideEncryption: 'aws:kms' })),
      (error: { name?: string }) => error.name === 'AccessDenied',
    );
  });

  it(`why docs/s3-bucket.md leaves ${AWS_ONLY_GUARD} out on RGW: there it refuses every multipart upload, whose parts carry no SSE header`, async () => {
    const bucket = 'pms-policy-aws-guard';
    await rgw.createBucket(bucket);
    await rgw.putBucketPolicy(
      bucket,
      JSON.parse(JSON.stringify(assembledPolicy(users, { awsOnlyGuard: true })).replaceAll(`:::${BUCKET}`, `:::${bucket}`)),
    );
    const jobs = new S3Storage(rgw.settings(bucket, { user: users['backup-writer'] }), { partSize: 5 * MiB, maxAttempts: 1 });
    try {
      await jobs.putBytes('backups/small', 'one PutObject carries the header');
      await assert.rejects(jobs.put('backups/large', patternStream(6 * MiB, 1)), refused);
    } finally {
      await jobs.close();
    }
  });

  it('prune deletes the expired backup and the WAL before the oldest kept base backup, every version of them, and audits; it may not write data', async () => {
    const prune = storage.prune;
    const result = await usingRepositoryLock(prune, 'prune', () => pruneBackups(prune, trust, 30, { dryRun: false }));
    assert.deepEqual(
      result.decisions.map((d) => [d.id, d.action, d.lockedUntil]),
      [
        [newBackup, 'keep', undefined],
        [oldBackup, 'delete', undefined],
      ],
    );
    assert.deepEqual([result.walDeleted, result.walLocked, result.walKeptFrom], [1, 0, '000000010000000000000004']);
    await appendAudit(
      prune,
      {
        at: new Date().toISOString(),
        actor: currentActor(undefined),
        operation: 'prune',
        backupId: null,
        outcome: 'success',
        details: {},
      },
      signer,
    );
    assert.equal((await verifyAudit(prune, trust)).ok, true);
    const owner = rgw.client();
    for (const prefix of [backupPrefix(oldBackup), OLD_SEGMENT]) {
      const left = await owner.send(new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: prefix }));
      assert.deepEqual([...(left.Versions ?? []), ...(left.DeleteMarkers ?? [])], [], `${prefix}: no version left`);
    }
    assert.ok(await prune.head(manifestKey(newBackup)));
    assert.ok(await prune.head(WAL_SYSTEM_KEY), 'wal/system.json is never pruned');
    await assert.rejects(prune.putBytes(baseBackupKey(oldBackup), 'x'), refused);
    await assert.rejects(prune.putBytes('wal/00000001/000000010000000000000009.zst.gpg', 'x'), refused);
    await assert.rejects(prune.delete('audit/000000000001.json', { purge: true }), refused, 'the audit log is never pruned');
  });
});
