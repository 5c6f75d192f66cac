/**
 * The audit log on the storage it is meant for: a Ceph RGW bucket with Object Lock (versioned,
 * where write-once is the driver's "earliest version wins") and the backup jobs' role from
 * deploy/s3/policy-backup-writer.json, which may not delete anything under audit/.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { type SigningKey, type TrustPolicy, loadSigningKey, loadTrustedSigners, signDetached } from '../crypto/signing.js';
import { isPmsError } from '../errors/catalogue.js';
import { S3Storage } from '../storage/s3/s3-storage.js';
import { type CephRgwHarness, cephRgwAvailable, startCephRgw } from '../testing/ceph-rgw-harness.js';
import { type GpgKeyPair, generateGpgKeyPair } from '../testing/gpg-keys.js';
import { REPO_ROOT } from '../testing/run-cli.js';
import { appendAudit, verifyAudit } from './audit-log.js';
import { type AuditEntry, auditKey } from './audit-record.js';
import { signatureKey } from './signed-record.js';

const BUCKET = 'pms-audit-test';

function entry(operation: string): AuditEntry {
  return {
    at: new Date().toISOString(),
    actor: { user: 'pms', host: 'cronjob', pod: null },
    operation,
    backupId: null,
    outcome: 'success',
    details: {},
  };
}

describe('the audit log on Ceph RGW with Object Lock, written by a role that cannot delete', {
  skip: !cephRgwAvailable() && 'Ceph RGW is not installed',
}, () => {
  let rgw: CephRgwHarness;
  let keys: GpgKeyPair;
  let signer: SigningKey;
  let trust: TrustPolicy;
  const writers: S3Storage[] = [];

  before(async () => {
    [rgw, keys] = await Promise.all([startCephRgw(), generateGpgKeyPair({ name: 'PMS Audit RGW Test' })]);
    signer = await loadSigningKey(keys.privateKeyFile, keys.passphraseFile);
    trust = { trusted: await loadTrustedSigners(keys.publicKeyFile) };
    await rgw.createBucket(BUCKET, { objectLock: true });
    const user = await rgw.createUser('pms-backup-writer');
    const role = JSON.parse(
      readFileSync(join(REPO_ROOT, 'deploy', 's3', 'policy-backup-writer.json'), 'utf8').replaceAll('pms-production-backups', BUCKET),
    ) as {
      Statement: Array<Record<string, unknown>>;
    };
    await rgw.putBucketPolicy(BUCKET, {
      Version: '2012-10-17',
      Statement: role.Statement.map((s) => ({ ...s, Principal: { AWS: [user.arn] } })),
    });
    // One client per concurrent job, as separate CronJob pods would have.
    for (let i = 0; i < 4; i++) {
      writers.push(new S3Storage(rgw.settings(BUCKET, { user, objectLock: { mode: 'COMPLIANCE', days: 1 } }), { maxAttempts: 1 }));
    }
  });
  after(async () => {
    await Promise.all(writers.map((w) => w.close()));
    await rgw?.destroy();
    keys?.remove();
  });

  test('concurrent jobs each get their own number and the chain verifies; the role indeed cannot delete an audit object', async () => {
    const written = await Promise.all(
      writers.flatMap((w, i) => [appendAudit(w, entry(`job-${i}-a`), signer), appendAudit(w, entry(`job-${i}-b`), signer)]),
    );
    assert.deepEqual(
      written.map((r) => r.seq).sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    const result = await verifyAudit(writers[0]!, trust);
    assert.equal(result.ok, true, JSON.stringify(result.problems));
    assert.equal(result.signedRecords, 8);
    await assert.rejects(writers[0]!.delete(auditKey(1)), (e: unknown) => isPmsError(e, 'PMS_ERR_REPO_ACCESS'));
  });

  test('a job killed between its claim and its record: its number is passed over once stale, nothing deleted', async () => {
    const [storage] = writers;
    // The dead job's claim on number 9: its signature, never followed by its record.
    await storage!.putBytes(signatureKey(auditKey(9)), await signDetached(Buffer.from('never written\n'), signer, auditKey(9)), {
      ifAbsent: true,
    });
    await sleep(31_000); // the claim goes stale (30 s)
    const next = await appendAudit(storage!, entry('monitor'), signer);
    assert.equal(next.seq, 10);
    assert.deepEqual(next.skipped, [9]);
    const result = await verifyAudit(storage!, trust);
    assert.equal(result.ok, true, JSON.stringify(result.problems));
    assert.equal(result.head?.seq, 10);
  });
});
