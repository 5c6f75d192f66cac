import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startThrowawayCluster, type ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { type GpgKeyPair, generateGpgKeyPair, signingEnv } from '../../testing/gpg-keys.js';
import { runCli } from '../../testing/run-cli.js';
import { FINGERPRINT_SQL, SAMPLE_DATA_SQL, SAMPLE_SCHEMA_SQL } from '../../testing/sample-data.js';
import { type S3rverHarness, startS3rver } from '../../testing/s3rver-harness.js';

let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let s3: S3rverHarness;
let env: Record<string, string>;
let sourceFingerprint: string;

before(async () => {
  [cluster, key, s3] = await Promise.all([
    startThrowawayCluster(),
    generateGpgKeyPair({ name: 'PMS S3 Test' }),
    startS3rver({ bucket: 'pms-production-backups' }),
  ]);
  await cluster.psql('CREATE DATABASE patient_telemetry');
  await cluster.psql(SAMPLE_SCHEMA_SQL + SAMPLE_DATA_SQL, 'patient_telemetry');
  sourceFingerprint = await cluster.psql(FINGERPRINT_SQL, 'patient_telemetry');
  env = {
    ...cluster.postgresEnv,
    ...s3.env('nightly'),
    POSTGRES_DB: 'patient_telemetry',
    ...signingEnv(key),
    BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
    BACKUP_GPG_KEY_ID: key.fingerprint,
    BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile,
    BACKUP_LOG_DIR: `${key.dir}/logs`,
  };
});

after(async () => {
  await Promise.allSettled([cluster?.destroy(), s3?.destroy()]);
  key?.remove();
});

describe('pms-backup over S3 (s3rver)', () => {
  test('create, list and restore round-trip through an S3 repository with a key prefix', async () => {
    const created = await runCli('pms-backup', ['create', '--json'], env);
    assert.equal(created.code, 0, created.stderr);
    const manifest = JSON.parse(created.stdout) as { id: string; objects: Array<{ key: string }> };
    assert.match(manifest.objects[0]!.key, /^backups\//, 'manifest keys are relative to the repository root (prefix excluded)');
    const list = await runCli('pms-backup', ['list', '--json'], env);
    const rows = JSON.parse(list.stdout) as Array<{ id: string; status: string }>;
    assert.deepEqual(
      rows.map((r) => [r.id, r.status]),
      [[manifest.id, 'complete']],
    );
    const restored = await runCli('pms-backup', ['restore', manifest.id, '--target-db', 'from_s3'], env);
    assert.equal(restored.code, 0, restored.stderr);
    assert.equal(await cluster.psql(FINGERPRINT_SQL, 'from_s3'), sourceFingerprint);
  });

  test('S3 down (connection refused): create fails with a clear error and leaves no manifest', async () => {
    const before = JSON.parse((await runCli('pms-backup', ['list', '--json'], env)).stdout) as unknown[];
    await s3.down();
    try {
      const result = await runCli('pms-backup', ['create'], env);
      assert.equal(result.code, 6, result.stderr);
      assert.match(result.stderr, /PMS_ERR_REPO_UNAVAILABLE/);
      assert.match(result.stderr, new RegExp(`127\\.0\\.0\\.1:${s3.port}`));
      assert.doesNotMatch(result.stderr, /S3RVER.*S3RVER|secret/i);
    } finally {
      await s3.up();
    }
    const afterRows = JSON.parse((await runCli('pms-backup', ['list', '--json'], env)).stdout) as Array<{ status: string }>;
    assert.equal(afterRows.filter((r) => r.status === 'complete').length, before.length, 'no new complete backup');
  });
});
