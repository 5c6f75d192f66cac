import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startThrowawayCluster, type ThrowawayCluster } from '../postgres/throwaway-cluster.js';
import { type GpgKeyPair, generateGpgKeyPair } from '../testing/gpg-keys.js';
import { binPath, runCli } from '../testing/run-cli.js';

let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let env: Record<string, string>;
let repo: string;

before(async () => {
  [cluster, key] = await Promise.all([startThrowawayCluster(), generateGpgKeyPair({ name: 'PMS Server Crash' })]);
  await cluster.psql('CREATE DATABASE patient_telemetry');
  await cluster.psql("CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 600000) g", 'patient_telemetry');
  repo = join(key.dir, 'repo');
  mkdirSync(repo);
  env = {
    ...cluster.postgresEnv,
    POSTGRES_DB: 'patient_telemetry',
    BACKUP_REPOSITORY: `file://${repo}`,
    BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
    BACKUP_GPG_KEY_ID: key.fingerprint,
    BACKUP_LOG_DIR: join(key.dir, 'logs'),
  };
});

after(async () => {
  await cluster?.destroy();
  key?.remove();
});

describe('the database server dies during a backup', () => {
  test('create fails naming pg_dump\'s error, and no complete backup exists', async () => {
    const child = spawn(process.execPath, [binPath('pms-backup'), 'create'], { env: { PATH: process.env['PATH'], ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    // Crash the server once encrypted bytes are being written (a temporary file is growing).
    const growing = () =>
      readdirSync(join(repo), { recursive: true, withFileTypes: true }).some((e) => e.isFile() && e.name.startsWith('.pms-tmp-') && statSync(join(e.parentPath ?? e.path, e.name)).size > 32 * 1024);
    for (let i = 0; i < 600 && child.exitCode === null && !growing(); i += 1) await sleep(10);
    await cluster.stop('immediate');
    const code = await exited;
    await cluster.start();
    assert.notEqual(code, 0);
    assert.match(stderr, /PMS_ERR_TOOL_FAILED: pg_dump (exited|was killed)/);
    const list = JSON.parse((await runCli('pms-backup', ['list', '--json'], env)).stdout) as Array<{ status: string }>;
    assert.equal(list.filter((r) => r.status === 'complete').length, 0, 'nothing complete after the crash');
    const retry = await runCli('pms-backup', ['create'], env);
    assert.equal(retry.code, 0, retry.stderr);
  });
});
