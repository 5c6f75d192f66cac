import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startThrowawayCluster, type ThrowawayCluster } from '../postgres/throwaway-cluster.js';
import { runTool } from '../process/tool-process.js';
import { type ArchiveFixture, createArchiveFixture } from '../testing/archive-fixture.js';
import { runCli } from '../testing/run-cli.js';
import { archiveCommand } from '../commands/restore/pitr/recovery-settings.js';

let fixture: ArchiveFixture;
let source: ThrowawayCluster;
let restored: ThrowawayCluster | undefined;
let work: string;
let env: Record<string, string>;

async function waitFor(what: string, probe: () => Promise<boolean>, seconds = 60): Promise<void> {
  for (let i = 0; i < seconds * 10; i += 1) {
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function archiveCurrentWal(cluster: ThrowawayCluster): Promise<void> {
  const name = await cluster.psql('SELECT pg_walfile_name(pg_current_wal_lsn()) FROM pg_switch_wal()');
  await waitFor(
    `${name} archived`,
    async () => (await cluster.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")) >= name,
  );
}

const cli = (args: string[], extra: Record<string, string> = {}) => runCli('pms-backup', args, { ...source.postgresEnv, ...env, ...extra });

before(async () => {
  fixture = await createArchiveFixture('pitr-ops');
  ({ work } = fixture);
  env = { POSTGRES_DB: 'patient_telemetry', ...fixture.env };
  source = await startThrowawayCluster({
    settings: { archive_mode: 'on', wal_level: 'replica', archive_command: archiveCommand() },
    serverEnv: env,
  });
  await source.psql('CREATE DATABASE patient_telemetry');
  await source.psql(
    "CREATE TABLE reading (id bigserial PRIMARY KEY, label text NOT NULL); INSERT INTO reading (label) SELECT 'before-base' FROM generate_series(1, 500)",
    'patient_telemetry',
  );
});

after(async () => {
  await restored?.destroy().catch(() => undefined);
  await source?.destroy();
  fixture?.remove();
});

describe('point-in-time recovery through the CLI, with list, monitor, verify and prune', () => {
  test('restore --pitr --target-time T --pgdata DIR, then starting the server as printed, recovers to exactly T', async () => {
    const base = await cli(['base-backup', '--json']);
    assert.equal(base.code, 0, base.stderr);
    await source.psql("INSERT INTO reading (label) SELECT 'before-t' FROM generate_series(1, 300)", 'patient_telemetry');
    await sleep(1100);
    const target = new Date().toISOString();
    await sleep(1100);
    await source.psql("INSERT INTO reading (label) SELECT 'after-t' FROM generate_series(1, 200)", 'patient_telemetry');
    await archiveCurrentWal(source);

    const pgdata = join(work, 'pitr-data');
    const result = await cli(['restore', '--pitr', '--target-time', target, '--pgdata', pgdata]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /pg_ctl/, 'prints how to start the server');
    const nonEmpty = await cli(['restore', '--pitr', '--target-time', target, '--pgdata', pgdata]);
    assert.equal(nonEmpty.code, 7, 'a non-empty data directory is refused');

    restored = await startThrowawayCluster({
      serverEnv: env,
      populate: async (dataDir) => {
        await runTool('cp', ['-a', `${pgdata}/.`, dataDir]);
      },
    });
    await waitFor('recovery to promote', async () => (await restored!.psql('SELECT pg_is_in_recovery()')) === 'f');
    const labels = await restored.psql(
      "SELECT string_agg(label || ':' || n, ',' ORDER BY label) FROM (SELECT label, count(*) n FROM reading GROUP BY label) x",
      'patient_telemetry',
    );
    assert.equal(labels, 'before-base:500,before-t:300');
  });

  test('list shows the base backup and the WAL archive with its restorable window; monitor checks WAL age and gaps', async () => {
    const list = JSON.parse((await cli(['list', '--json'])).stdout) as Array<{
      id: string;
      kind: string;
      status: string;
      earliestRestorableTime?: string;
      latestRestorableTime?: string;
    }>;
    assert.ok(list.some((r) => r.kind === 'base' && r.status === 'complete'));
    const wal = list.find((r) => r.kind === 'wal-archive');
    assert.ok(wal?.earliestRestorableTime && wal.latestRestorableTime, JSON.stringify(wal));
    assert.equal(wal.status, 'complete');
    const human = await cli(['list']);
    assert.match(human.stdout, /point-in-time recovery possible from/);
    const monitor = JSON.parse((await cli(['monitor', '--json'])).stdout) as {
      checks: Array<{ name: string; ok: boolean; detail: string }>;
    };
    assert.equal(monitor.checks.find((c) => c.name === 'wal-age')?.ok, true);
    assert.equal(monitor.checks.find((c) => c.name === 'wal-gaps')?.ok, true);
    const stale = JSON.parse((await cli(['monitor', '--json'], { BACKUP_WAL_MAX_AGE_MINUTES: '0.0001' })).stdout) as {
      checks: Array<{ name: string; ok: boolean }>;
    };
    assert.equal(stale.checks.find((c) => c.name === 'wal-age')?.ok, false);
  });

  test('verify of a base backup recovers it to the end of the archive in a throwaway server and runs amcheck', async () => {
    const result = await cli(['verify', 'latest', '--kind', 'base', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as { ok: boolean; checks: Array<{ name: string; ok: boolean }> };
    assert.equal(report.ok, true);
    for (const name of ['restore', 'files', 'wal-recovery', 'server-answers', 'amcheck'])
      assert.ok(
        report.checks.some((c) => c.name === name && c.ok),
        name,
      );
  });

  test('doctor checks point-in-time recovery: archive_command runs wal-push and the role may replicate; a role without REPLICATION fails with the fix', async () => {
    type Report = { checks: Array<{ name: string; ok: boolean; detail: string; fix?: string }> };
    const good = JSON.parse((await cli(['doctor', '--json'])).stdout) as Report;
    const pitr = good.checks.find((c) => c.name === 'point-in-time recovery');
    assert.equal(pitr?.ok, true, JSON.stringify(pitr));
    assert.match(pitr.detail, /archive_mode on, archive_command runs wal-push, last archived [0-9A-F]{24}/);
    await source.psql('CREATE ROLE doctor_no_replication LOGIN');
    const bad = await cli(['doctor', '--json'], { POSTGRES_USER: 'doctor_no_replication' });
    assert.equal(bad.code, 1);
    const check = (JSON.parse(bad.stdout) as Report).checks.find((c) => c.name === 'point-in-time recovery');
    assert.equal(check?.ok, false, JSON.stringify(check));
    assert.match(check.detail, /role doctor_no_replication may not open replication connections/);
    assert.match(check.fix ?? '', /REPLICATION/);
  });

  test('prune keeps every WAL segment a retained base backup needs and deletes older ones', async () => {
    const second = await cli(['base-backup', '--json']);
    assert.equal(second.code, 0, second.stderr);
    const newest = JSON.parse(second.stdout) as { id: string; startWalSegment: string };
    const verified = await cli(['verify', newest.id]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    const result = await cli(['prune', '--json'], { BACKUP_RETENTION_DAYS: '0' });
    assert.equal(result.code, 0, result.stderr);
    const pruned = JSON.parse(result.stdout) as { walDeleted: number; walKeptFrom: string };
    assert.equal(pruned.walKeptFrom, newest.startWalSegment);
    assert.ok(pruned.walDeleted > 0);
    const list = JSON.parse((await cli(['list', '--json'])).stdout) as Array<{ kind: string; status: string; gaps?: unknown[] }>;
    assert.deepEqual(list.find((r) => r.kind === 'wal-archive')?.gaps, [], 'no gap after the retained base backup');
  });
});
