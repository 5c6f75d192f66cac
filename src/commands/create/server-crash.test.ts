// test-layer: alone: kills pg_dump and the server at chosen moments of a running backup
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startThrowawayCluster, type ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { type GpgKeyPair, generateGpgKeyPair, signingEnv } from '../../testing/gpg-keys.js';
import { waitUntilMidUpload } from '../../testing/mid-upload.js';
import { binPath, runCli } from '../../testing/run-cli.js';

let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let env: Record<string, string>;
let repo: string;

before(async () => {
  [cluster, key] = await Promise.all([startThrowawayCluster(), generateGpgKeyPair({ name: 'PMS Server Crash' })]);
  await cluster.psql('CREATE DATABASE patient_telemetry');
  await cluster.psql(
    'CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 600000) g',
    'patient_telemetry',
  );
  repo = join(key.dir, 'repo');
  mkdirSync(repo);
  env = {
    ...cluster.postgresEnv,
    POSTGRES_DB: 'patient_telemetry',
    BACKUP_REPOSITORY: `file://${repo}`,
    ...signingEnv(key),
    BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
    BACKUP_GPG_KEY_ID: key.fingerprint,
    BACKUP_LOG_DIR: join(key.dir, 'logs'),
  };
});

after(async () => {
  await cluster?.destroy();
  key?.remove();
});

describe('interruptions during a backup', () => {
  test('the database server stopping mid-backup fails create with an error naming it, and no complete backup exists', async () => {
    const child = spawn(process.execPath, [binPath('pms-backup'), 'create'], {
      env: { PATH: process.env['PATH'], ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    // Crash the server once encrypted bytes are being written.
    assert.ok(await waitUntilMidUpload(repo, child, 32 * 1024), 'the backup was caught mid-stream');
    await cluster.stop('immediate');
    const code = await exited;
    await cluster.start();
    assert.notEqual(code, 0);
    // Whichever noticed first, pg_dump or the row-count connection, the error names the server.
    assert.match(stderr, /PMS_ERR_TOOL_FAILED: pg_dump (exited|was killed)|PMS_ERR_DB_UNAVAILABLE: lost PostgreSQL/);
    const list = JSON.parse((await runCli('pms-backup', ['list', '--json'], env)).stdout) as Array<{ status: string }>;
    assert.equal(list.filter((r) => r.status === 'complete').length, 0, 'nothing complete after the crash');
    const retry = await runCli('pms-backup', ['create'], env);
    assert.equal(retry.code, 0, retry.stderr);
  });

  test('SIGTERM (a Kubernetes deadline or eviction) stops create cleanly: PMS_ERR_ABORTED, lock released, failure audited, nothing complete', async () => {
    const before = (JSON.parse((await runCli('pms-backup', ['list', '--json'], env)).stdout) as Array<{ status: string }>).filter(
      (r) => r.status === 'complete',
    ).length;
    const child = spawn(process.execPath, [binPath('pms-backup'), 'create'], {
      env: { PATH: process.env['PATH'], ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.ok(await waitUntilMidUpload(repo, child, 32 * 1024), 'the backup was caught mid-stream');
    child.kill('SIGTERM');
    const code = await exited;
    assert.equal(code, 1, stderr);
    assert.match(stderr, /PMS_ERR_ABORTED: create was interrupted by SIGTERM/);
    assert.equal(readdirSync(join(repo, 'locks')).length, 0, 'the repository lock was released');
    const after = (JSON.parse((await runCli('pms-backup', ['list', '--json'], env)).stdout) as Array<{ status: string }>).filter(
      (r) => r.status === 'complete',
    ).length;
    assert.equal(after, before, 'no new complete backup');
    const audit = JSON.parse((await runCli('pms-backup', ['audit', '--json'], env)).stdout) as Array<{
      operation: string;
      outcome: string;
      details: { errorCode?: string };
    }>;
    const last = audit.filter((r) => r.operation === 'create').pop();
    assert.equal(last?.outcome, 'failure');
    assert.equal(last?.details.errorCode, 'PMS_ERR_ABORTED');
  });

  test('SIGTERM during a restore drops the staging database and leaves no target behind', async () => {
    const child = spawn(process.execPath, [binPath('pms-backup'), 'restore', 'latest', '--target-db', 'interrupted_restore'], {
      env: { PATH: process.env['PATH'], ...env, BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    const staging = () => cluster.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'interrupted_restore__restoring_%'");
    for (let i = 0; i < 600 && child.exitCode === null && (await staging()) === '0'; i += 1) await sleep(10);
    child.kill('SIGTERM');
    assert.equal(await exited, 1, stderr);
    assert.match(stderr, /PMS_ERR_ABORTED: restore was interrupted by SIGTERM/);
    assert.equal(await cluster.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'interrupted_restore%'"), '0');
  });

  test('SIGTERM during verify stops its throwaway server, removes its files and records no verification', async (t) => {
    // verify's own TMPDIR: other test files make throwaway servers in the shared /tmp meanwhile.
    const scratch = mkdtempSync(join(tmpdir(), 'pms-crash-verify-'));
    chmodSync(scratch, 0o755);
    t.after(() => rmSync(scratch, { recursive: true, force: true }));
    const throwaway = () =>
      readdirSync(scratch)
        .filter((d) => d.startsWith('pms-pg-'))
        .sort();
    const before = throwaway();
    const child = spawn(process.execPath, [binPath('pms-backup'), 'verify', 'latest'], {
      env: { PATH: process.env['PATH'], ...env, BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile, TMPDIR: scratch },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    for (let i = 0; i < 1000 && child.exitCode === null && throwaway().length <= before.length; i += 1) await sleep(10);
    await sleep(300);
    child.kill('SIGTERM');
    assert.equal(await exited, 1, stderr);
    assert.match(stderr, /PMS_ERR_ABORTED: verify was interrupted by SIGTERM/);
    assert.deepEqual(
      throwaway().filter((d) => !before.includes(d)),
      [],
      'the throwaway server and its files are gone',
    );
    const records = readdirSync(repo, { recursive: true, withFileTypes: true }).filter(
      (e) => e.isFile() && e.name.startsWith('verification-'),
    );
    assert.equal(records.length, 0, 'no verification result was recorded');
  });
});
