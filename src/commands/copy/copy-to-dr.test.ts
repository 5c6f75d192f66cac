import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openStorage } from '../../storage/open-storage.js';
import { startThrowawayCluster, type ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { type GpgKeyPair, generateGpgKeyPair, signingEnv } from '../../testing/gpg-keys.js';
import { runCli } from '../../testing/run-cli.js';
import { type S3rverHarness, S3RVER_ACCESS_KEY_ID, S3RVER_SECRET_ACCESS_KEY, startS3rver } from '../../testing/s3rver-harness.js';
import { FINGERPRINT_SQL, SAMPLE_DATA_SQL, SAMPLE_SCHEMA_SQL } from '../../testing/sample-data.js';

let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let dr: S3rverHarness;
let env: Record<string, string>;
let drEnv: Record<string, string>;
let source: string;

before(async () => {
  [cluster, key, dr] = await Promise.all([
    startThrowawayCluster(),
    generateGpgKeyPair({ name: 'PMS DR Test' }),
    startS3rver({ bucket: 'pms-dr-backups' }),
  ]);
  await cluster.psql('CREATE DATABASE patient_telemetry');
  await cluster.psql(SAMPLE_SCHEMA_SQL + SAMPLE_DATA_SQL, 'patient_telemetry');
  source = await cluster.psql(FINGERPRINT_SQL, 'patient_telemetry');
  mkdirSync(join(key.dir, 'primary'));
  drEnv = {
    BACKUP_DR_AWS_REGION: 'eu-west-1',
    BACKUP_DR_AWS_ACCESS_KEY_ID: S3RVER_ACCESS_KEY_ID,
    BACKUP_DR_AWS_SECRET_ACCESS_KEY: S3RVER_SECRET_ACCESS_KEY,
    BACKUP_DR_S3_ENDPOINT: dr.endpoint,
    BACKUP_DR_S3_FORCE_PATH_STYLE: 'true',
  };
  env = {
    ...cluster.postgresEnv,
    ...drEnv,
    POSTGRES_DB: 'patient_telemetry',
    BACKUP_REPOSITORY: `file://${key.dir}/primary`,
    ...signingEnv(key),
    BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
    BACKUP_GPG_KEY_ID: key.fingerprint,
    BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile,
    BACKUP_LOG_DIR: `${key.dir}/logs`,
  };
});

after(async () => {
  await Promise.allSettled([cluster?.destroy(), dr?.destroy()]);
  key?.remove();
});

const drUrl = 's3://pms-dr-backups/eu-west-1';

describe('cross-region copy (pms-backup copy --to)', () => {
  test('copies every complete backup with its sha256 checked, and a re-run copies nothing', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await runCli('pms-backup', ['create'], env)).code, 0);
    const first = await runCli('pms-backup', ['copy', '--to', drUrl, '--json'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.equal((JSON.parse(first.stdout) as { backupsCopied: string[] }).backupsCopied.length, 2);
    const again = await runCli('pms-backup', ['copy', '--to', drUrl, '--json'], env);
    const rerun = JSON.parse(again.stdout) as { backupsCopied: string[]; backupsSkipped: number };
    assert.deepEqual([rerun.backupsCopied.length, rerun.backupsSkipped], [0, 2]);
  });

  test('an interrupted copy (objects without a manifest in DR) is incomplete there and completed by the next run', async () => {
    const created = await runCli('pms-backup', ['create', '--json'], env);
    const id = (JSON.parse(created.stdout) as { id: string }).id;
    const drStorage = openStorage(dr.repository('eu-west-1'));
    try {
      await drStorage.putBytes(`backups/${id}/pms-backup-${id}.dump.zst.gpg`, 'half-copied');
    } finally {
      await drStorage.close();
    }
    const drList = await runCli('pms-backup', ['list', '--json'], {
      ...env,
      BACKUP_REPOSITORY: drUrl,
      AWS_REGION: 'eu-west-1',
      S3_ENDPOINT: dr.endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: S3RVER_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: S3RVER_SECRET_ACCESS_KEY,
    });
    assert.equal((JSON.parse(drList.stdout) as Array<{ id: string; status: string }>).find((r) => r.id === id)?.status, 'incomplete');
    const resumed = await runCli('pms-backup', ['copy', '--to', drUrl, '--json'], env);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual((JSON.parse(resumed.stdout) as { backupsCopied: string[] }).backupsCopied, [id]);
  });

  test('restore and verify work from the DR repository unchanged', async () => {
    const fromDr = {
      ...env,
      BACKUP_REPOSITORY: drUrl,
      AWS_REGION: 'eu-west-1',
      S3_ENDPOINT: dr.endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: S3RVER_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: S3RVER_SECRET_ACCESS_KEY,
    };
    const restored = await runCli('pms-backup', ['restore', 'latest', '--target-db', 'from_dr'], fromDr);
    assert.equal(restored.code, 0, restored.stderr);
    assert.equal(await cluster.psql(FINGERPRINT_SQL, 'from_dr'), source);
    const verified = await runCli('pms-backup', ['verify', 'latest', '--json'], fromDr);
    assert.equal(verified.code, 0, verified.stderr);
  });

  test('monitor reports the DR lag and fails past BACKUP_DR_MAX_LAG_HOURS', async () => {
    const withDr = { ...env, BACKUP_DR_REPOSITORY: drUrl };
    assert.equal((await runCli('pms-backup', ['verify', 'latest'], withDr)).code, 0);
    const inSync = await runCli('pms-backup', ['monitor', '--json'], withDr);
    const drCheck = (out: string) =>
      (JSON.parse(out) as { checks: Array<{ name: string; ok: boolean; detail: string }> }).checks.find((c) => c.name === 'dr-copy')!;
    assert.equal(drCheck(inSync.stdout).ok, true, drCheck(inSync.stdout).detail);
    await runCli('pms-backup', ['create'], env);
    const lagging = await runCli('pms-backup', ['monitor', '--json'], { ...withDr, BACKUP_DR_MAX_LAG_HOURS: '0.00001' });
    assert.equal(lagging.code, 1);
    assert.match(drCheck(lagging.stdout).detail, /1 backup\(s\) not yet in/);
  });

  test("copy takes the DR repository's lock, so a prune running there cannot delete a backup mid-copy", async () => {
    const drStorage = openStorage(dr.repository('eu-west-1'));
    try {
      const now = new Date().toISOString();
      await drStorage.putBytes(
        'locks/repository.lock',
        JSON.stringify({ token: 't', operation: 'prune', host: hostname(), pid: process.pid, acquiredAt: now, heartbeatAt: now }),
      );
      const locked = await runCli('pms-backup', ['copy', '--to', drUrl], env);
      assert.equal(locked.code, 7, locked.stderr);
      assert.match(locked.stderr, /PMS_ERR_LOCKED: the repository is locked by prune/);
    } finally {
      await drStorage.delete('locks/repository.lock');
      await drStorage.close();
    }
  });

  test('a DR repository that is down gives a clear error; --to without a scheme is refused', async () => {
    await dr.down();
    try {
      const down = await runCli('pms-backup', ['copy', '--to', drUrl], env);
      assert.equal(down.code, 6, down.stderr);
      assert.match(down.stderr, /PMS_ERR_REPO_UNAVAILABLE/);
    } finally {
      await dr.up();
    }
    const bad = await runCli('pms-backup', ['copy', '--to', 'pms-dr-backups'], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--to="pms-dr-backups" is invalid/);
  });
});
