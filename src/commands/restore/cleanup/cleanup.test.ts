import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, existsSync, rmSync, utimesSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { type ThrowawayCluster, startThrowawayCluster } from '../../../postgres/throwaway-cluster.js';
import { type ArchiveFixture, createArchiveFixture } from '../../../testing/archive-fixture.js';
import { binPath, runCli } from '../../../testing/run-cli.js';

/**
 * Issue 14 item 3: a restore killed with SIGKILL (an OOM kill) leaves its staging database with
 * partial patient data. doctor reports it with its age, restore --cleanup removes it after
 * confirmation, and nothing in use is touched.
 */
let fixture: ArchiveFixture;
let cluster: ThrowawayCluster;
let tmp: string;
let env: Record<string, string>;

before(async () => {
  fixture = await createArchiveFixture('cleanup');
  cluster = await startThrowawayCluster();
  await cluster.psql('CREATE DATABASE clinic');
  // Enough rows that the restore is still running when it is killed.
  await cluster.psql(
    'CREATE TABLE reading (id bigint PRIMARY KEY, value text NOT NULL); INSERT INTO reading SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 400000) g;',
    'clinic',
  );
  tmp = mkdtempSync(join(tmpdir(), 'pms-cleanup-tmp-'));
  chmodSync(tmp, 0o1777);
  env = { ...fixture.env, ...cluster.postgresEnv, POSTGRES_DB: 'clinic', TMPDIR: tmp };
  const created = await runCli('pms-backup', ['create'], env);
  assert.equal(created.code, 0, created.stderr);
});

after(async () => {
  await cluster?.destroy();
  fixture?.remove();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function stagingDatabases(): Promise<string[]> {
  const out = await cluster.psql("SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '%\\_\\_restoring\\_%'");
  return out ? out.split(',') : [];
}

describe('leftovers of killed restores', () => {
  test('a SIGKILLed restore leaves a staging database: doctor names it with its age, restore --cleanup drops it after confirmation', {
    timeout: 180_000,
  }, async () => {
    const child = spawn(process.execPath, [binPath('pms-backup'), 'restore', 'latest', '--target-db', 'killed_restore'], {
      env: { PATH: process.env['PATH'], ...env },
      stdio: 'ignore',
      detached: true,
    });
    let staging: string[] = [];
    for (let i = 0; i < 600 && staging.length === 0; i += 1) {
      staging = await stagingDatabases();
      if (staging.length === 0) await sleep(50);
    }
    assert.equal(staging.length, 1, 'the restore created its staging database');
    // The whole process group, as the kernel's OOM killer takes a pod's container.
    process.kill(-(child.pid as number), 'SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    await sleep(500);
    assert.deepEqual(await stagingDatabases(), staging, 'nothing dropped it');
    const [name] = staging as [string];
    // Not orphaned while young (a restore may be between statements): make it an hour old.
    const comment = await cluster.psql(`SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '${name}'`);
    assert.match(comment, /^pms-backup restore staging database, created \S+Z on /);
    const hourAgo = new Date(Date.now() - 3600_000).toISOString();
    await cluster.psql(`COMMENT ON DATABASE "${name}" IS '${comment.replace(/created \S+Z/, `created ${hourAgo}`)}'`);

    const doctor = await runCli('pms-backup', ['doctor', '--json'], env);
    const check = (JSON.parse(doctor.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string }> }).checks.find(
      (c) => c.name === 'leftovers',
    );
    assert.equal(check?.ok, false, doctor.stdout);
    assert.match(check?.detail ?? '', new RegExp(`staging database ${name.replace(/\$/g, '\\$')} \\(1 h old, 0 session\\(s\\)\\)`));

    const refused = await runCli('pms-backup', ['restore', '--cleanup'], env);
    assert.equal(refused.code, 64, refused.stderr);
    assert.match(refused.stderr, /restore --cleanup would remove 1 leftover\(s\): confirm on a terminal, or pass --yes/);
    assert.deepEqual(await stagingDatabases(), staging, 'nothing removed without confirmation');

    const cleaned = await runCli('pms-backup', ['restore', '--cleanup', '--yes'], env);
    assert.equal(cleaned.code, 0, cleaned.stderr);
    assert.match(cleaned.stdout, new RegExp(`^removed staging database ${name}`, 'm'));
    assert.deepEqual(await stagingDatabases(), []);
    const after = await runCli('pms-backup', ['doctor', '--json'], env);
    assert.equal(
      (JSON.parse(after.stdout) as { checks: Array<{ name: string; ok: boolean }> }).checks.find((c) => c.name === 'leftovers')?.ok,
      true,
    );
  });

  test('an old throwaway directory is reported by doctor and monitor and removed; a young one and a staging database in use are left alone', {
    timeout: 120_000,
  }, async () => {
    const old = join(tmp, 'pms-pg-abc123');
    const young = join(tmp, 'pms-pg-def456');
    mkdirSync(join(old, 'data'), { recursive: true });
    mkdirSync(join(young, 'data'), { recursive: true });
    const dayAgo = new Date(Date.now() - 86_400_000);
    utimesSync(old, dayAgo, dayAgo);
    await cluster.psql(`CREATE DATABASE "busy__restoring_aaaaaa"`);
    const session = spawn(
      'psql',
      ['-X', '-c', 'SELECT pg_sleep(60)', `host=${cluster.socketDir} port=${cluster.port} user=postgres dbname=busy__restoring_aaaaaa`],
      {
        stdio: 'ignore',
        env: { PATH: process.env['PATH'] },
      },
    );
    try {
      for (let i = 0; i < 100; i += 1) {
        if ((await cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'busy__restoring_aaaaaa'")) === '1') break;
        await sleep(100);
      }
      const monitor = await runCli('pms-backup', ['monitor', '--json'], env);
      const leftovers = (JSON.parse(monitor.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string }> }).checks.find(
        (c) => c.name === 'leftovers',
      );
      assert.equal(leftovers?.ok, true, 'reported, not failing the run');
      assert.match(leftovers?.detail ?? '', new RegExp(`^warning: throwaway directory ${old} \\(24 h old\\)`));
      assert.doesNotMatch(leftovers?.detail ?? '', /def456/);

      const cleaned = await runCli('pms-backup', ['restore', '--cleanup', '--yes', '--json'], env);
      assert.equal(cleaned.code, 0, cleaned.stderr);
      const report = JSON.parse(cleaned.stdout) as {
        removed: Array<{ kind: string; path?: string }>;
        leftAlone: Array<{ name?: string; path?: string }>;
      };
      assert.deepEqual(
        report.removed.map((r) => r.path),
        [old],
      );
      assert.ok(report.leftAlone.some((l) => l.name === 'busy__restoring_aaaaaa'));
      assert.ok(report.leftAlone.some((l) => l.path === young));
      assert.equal(existsSync(old), false);
      assert.equal(existsSync(young), true);
      assert.equal(await cluster.psql("SELECT count(*) FROM pg_database WHERE datname = 'busy__restoring_aaaaaa'"), '1');
    } finally {
      session.kill('SIGKILL');
      await sleep(200);
      await cluster.psql('DROP DATABASE IF EXISTS "busy__restoring_aaaaaa" WITH (FORCE)');
      rmSync(young, { recursive: true, force: true });
    }
  });
});
