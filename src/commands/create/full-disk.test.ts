import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startThrowawayCluster, type ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { type GpgKeyPair, generateGpgKeyPair, signingEnv } from '../../testing/gpg-keys.js';
import { runCli } from '../../testing/run-cli.js';

let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let mountPoint: string;
let env: Record<string, string>;

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name);
}

before(async () => {
  if (process.getuid?.() !== 0) throw new Error('this fault test mounts a small tmpfs and must run as root (CI does)');
  [cluster, key] = await Promise.all([startThrowawayCluster(), generateGpgKeyPair({ name: 'PMS Full Disk' })]);
  mountPoint = mkdtempSync(join(tmpdir(), 'pms-full-disk-'));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mountPoint], { encoding: 'utf8' });
  assert.equal(mounted.status, 0, `mount a 3 MiB tmpfs: ${mounted.stderr}`);
  mkdirSync(join(mountPoint, 'repo'));
  await cluster.psql('CREATE DATABASE patient_telemetry');
  // Random bytes do not compress: about 8 MB stored, more than the volume holds.
  await cluster.psql(
    "CREATE TABLE blob AS SELECT g AS id, decode(md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text), 'hex') AS data FROM generate_series(1, 250000) g",
    'patient_telemetry',
  );
  env = {
    ...cluster.postgresEnv,
    POSTGRES_DB: 'patient_telemetry',
    BACKUP_REPOSITORY: `file://${join(mountPoint, 'repo')}`,
    ...signingEnv(key),
    BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
    BACKUP_GPG_KEY_ID: key.fingerprint,
    BACKUP_LOG_DIR: join(key.dir, 'logs'),
  };
});

after(async () => {
  if (mountPoint) {
    spawnSync('umount', [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  }
  await cluster?.destroy();
  key?.remove();
});

describe('a full repository disk', () => {
  test('create fails with a clear "filesystem is full" error, leaves no partial object or manifest, and works once space is back', async () => {
    const full = await runCli('pms-backup', ['create'], env);
    assert.equal(full.code, 6, full.stderr);
    assert.match(full.stderr, /PMS_ERR_REPO_UNAVAILABLE: .*is full \(ENOSPC\); free space or grow the volume/);
    assert.deepEqual(
      files(join(mountPoint, 'repo')).filter((f) => f.endsWith('.gpg') || f === 'manifest.json'),
      [],
      'nothing partial is visible',
    );
    const list = JSON.parse((await runCli('pms-backup', ['list', '--json'], env)).stdout) as Array<{ status: string }>;
    assert.equal(list.filter((r) => r.status === 'complete').length, 0);
    await cluster.psql('TRUNCATE blob', 'patient_telemetry');
    const ok = await runCli('pms-backup', ['create', '--json'], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(
      (JSON.parse((await runCli('pms-backup', ['list', '--json'], env)).stdout) as Array<{ status: string }>).filter(
        (r) => r.status === 'complete',
      ).length,
      1,
    );
  });
});
