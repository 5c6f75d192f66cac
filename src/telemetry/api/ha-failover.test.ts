import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { loadTelemetryConfig } from '../../config/telemetry-config.js';
import { type ArchiveFixture, createArchiveFixture } from '../../testing/archive-fixture.js';
import { type PatroniCluster, type PatroniMember, startPatroniCluster } from '../../testing/patroni-harness.js';
import { runCli } from '../../testing/run-cli.js';
import { registerDevice } from '../devices/device-registry.js';
import { openTelemetryPool } from '../db/telemetry-pool.js';
import { LogCapture, PATIENT_A, heartRate } from '../testing/telemetry-harness.js';
import { buildServer } from './build-server.js';

let cluster: PatroniCluster;
let fixture: ArchiveFixture;
let env: Record<string, string>;
let admin: pg.Pool;
let pool: pg.Pool;
let app: FastifyInstance;

before(async () => {
  // Strict, as prod runs it (components/postgres-ha, patroni-config.ts): no commit is acknowledged
  // without a second member.
  [cluster, fixture] = await Promise.all([startPatroniCluster({ synchronousModeStrict: true }), createArchiveFixture('ha-failover')]);
  const leader = await cluster.leader();
  await cluster.psql(leader, 'CREATE DATABASE patient_telemetry');
  env = { ...cluster.postgresEnv, POSTGRES_DB: 'patient_telemetry' };
  // migrate is a writer: given the three servers, it must find the primary itself.
  const migrated = await runCli('pms-telemetry', ['migrate'], env);
  assert.equal(migrated.code, 0, migrated.stderr);
  await cluster.psql(leader, 'CREATE ROLE telemetry_service LOGIN IN ROLE pms_telemetry_ingest', 'patient_telemetry');
  admin = await openTelemetryPool(loadTelemetryConfig(env), 'ha-test-admin');
  const config = loadTelemetryConfig({
    ...env,
    POSTGRES_USER: 'telemetry_service',
    TELEMETRY_RATE_LIMIT_BURST: '100000',
    TELEMETRY_RATE_LIMIT_PER_MINUTE: '100000',
    TELEMETRY_STATEMENT_TIMEOUT_MS: '3000',
  });
  pool = await openTelemetryPool(config);
  ({ app } = await buildServer({ config, pool, logStream: new LogCapture() }));
});

after(async () => {
  await app?.close();
  await pool?.end();
  await admin?.end();
  await cluster?.stop();
  fixture?.remove();
});

test('the leader’s Patroni and PostgreSQL SIGKILLed mid-ingest: 503 with Retry-After in the gap, the API recovers without a restart, every reading answered 200 is stored exactly once', async () => {
  const devices = ['ha-1', 'ha-2', 'ha-3', 'ha-4'];
  const tokens = await Promise.all(devices.map(async (d) => (await registerDevice(admin, d, PATIENT_A)).token));
  const acknowledged = new Set<string>();
  let acksBeforeKill = 0;
  // When the last process of the leader was dead (killLeader returned): only a write sent after
  // that shows the new primary. Writes sent while the kill was under way could still commit on
  // the old leader (one run measured a 0.2 s "outage" that way).
  let killedAt: number | undefined;
  let firstOkAfterKill: number | undefined;
  let unavailable = 0;
  const okAfter = new Set<number>();
  let stop = false;

  // Firmware-like devices: resend the same batch until it is acknowledged, 200 ms apart on 503.
  const device = async (i: number): Promise<void> => {
    for (let n = 0; !stop; n += 1) {
      const batch = { readings: Array.from({ length: 10 }, (_, k) => heartRate(`${devices[i]}-${n}-${k}`, 70, 60_000 + k)) };
      for (;;) {
        const sentAt = Date.now();
        const res = await app.inject({
          method: 'POST',
          url: '/v1/readings',
          headers: { authorization: `Bearer ${tokens[i]}` },
          payload: batch,
        });
        if (res.statusCode === 200) {
          for (const r of batch.readings) acknowledged.add(r['readingId'] as string);
          if (killedAt === undefined) acksBeforeKill += 1;
          else if (sentAt > killedAt) {
            firstOkAfterKill ??= Date.now();
            okAfter.add(i);
          }
          break;
        }
        assert.equal(res.statusCode, 503, `unexpected status ${res.statusCode}: ${res.body}`);
        assert.equal(res.json().error.code, 'database-unavailable');
        assert.ok(Number(res.headers['retry-after']) >= 1, 'a 503 says when to retry');
        unavailable += 1;
        if (stop) return;
        await sleep(200);
      }
    }
  };

  const load = Promise.all(devices.map((_, i) => device(i)));
  while (acksBeforeKill < 40) await sleep(10);
  const killed = await cluster.killLeader();
  killedAt = Date.now();
  const { leader } = await cluster.waitForNewLeader(killed.member);
  while (okAfter.size < devices.length) await sleep(50);
  // A little more load on the new primary, then stop.
  await sleep(1000);
  stop = true;
  await load;

  const outageSeconds = ((firstOkAfterKill ?? Date.now()) - killed.killedAt) / 1000;
  const rows = (await cluster.psql(leader, "SELECT reading_id FROM telemetry.reading WHERE device_id LIKE 'ha-%'", 'patient_telemetry'))
    .split('\n')
    .filter(Boolean);
  const stored = new Set(rows);
  const lost = [...acknowledged].filter((id) => !stored.has(id));
  process.stdout.write(
    `# failover: write outage ${outageSeconds.toFixed(1)} s (SIGKILL to the first 200 for a batch sent after it), ${unavailable} answers 503, ${acknowledged.size} readings acknowledged, ${lost.length} lost, ${rows.length - stored.size} stored twice (ttl 10, loop_wait 2, retry_timeout 5, synchronous_mode strict)\n`,
  );
  assert.deepEqual(lost, [], 'every acknowledged reading is stored on the new primary');
  assert.equal(rows.length, stored.size, 'no reading is stored twice');
  assert.ok(unavailable > 0, 'the gap was answered 503');
  assert.ok(outageSeconds <= 30, `write outage ${outageSeconds} s is within 30 s`);
  assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
});

/** The log line a pms-backup command ends with (JSON on stderr). */
function finishedLine(stderr: string, command: string): Record<string, unknown> {
  const line = stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((l) => l['msg'] === `${command} finished`);
  assert.ok(line, `no "${command} finished" line in: ${stderr}`);
  return line;
}

/** Until `member` has replayed everything the leader wrote (a sync standby has flushed it, not necessarily applied it). */
async function caughtUp(leader: PatroniMember, member: PatroniMember): Promise<void> {
  const lsn = await cluster.psql(leader, 'SELECT pg_current_wal_lsn()');
  for (let i = 0; i < 300; i += 1) {
    if ((await cluster.psql(member, `SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn`)) === 't') return;
    await sleep(100);
  }
  throw new Error(`${member.name} did not replay up to ${lsn}`);
}

const READINGS_DIGEST = "SELECT count(*) || ' ' || md5(string_agg(reading_id, ',' ORDER BY reading_id)) FROM telemetry.reading";

/**
 * The members as a POSTGRES_HOST list in the order hardest for a writer after the failover: the
 * dead old leader first, then the standby, then the new primary (nothing reconfigured: the same
 * three servers as before the failover, only listed in this order).
 */
async function afterFailover(): Promise<{ leader: PatroniMember; standby: PatroniMember; env: Record<string, string> }> {
  const { leader } = await cluster.waitForHealthy();
  const dead = cluster.members.filter((m) => !m.running);
  const standbys = cluster.members.filter((m) => m.running && m.name !== leader.name);
  assert.equal(dead.length, 1, 'the old leader is still dead');
  assert.equal(standbys.length, 1, 'one standby left');
  const standby = standbys[0]!;
  const order = [dead[0]!, standby, leader];
  return {
    leader,
    standby,
    env: { ...env, POSTGRES_HOST: order.map((m) => m.host).join(','), POSTGRES_PORT: order.map((m) => m.port).join(',') },
  };
}

test('after the failover, with POSTGRES_HOST listing the dead member and the standby before the new primary: create reads the standby (prefer and require), and restore, given the same list, writes its copy on the new primary', async () => {
  const { leader, standby, env: listed } = await afterFailover();
  await caughtUp(leader, standby);
  const backupEnv = { ...listed, ...fixture.env };
  const ids: string[] = [];
  for (const fromStandby of ['prefer', 'require']) {
    const created = await runCli('pms-backup', ['create', '--json'], { ...backupEnv, BACKUP_FROM_STANDBY: fromStandby });
    assert.equal(created.code, 0, created.stderr);
    const finished = finishedLine(created.stderr, 'create');
    assert.equal(finished['server'], `${standby.host}:${standby.port}`, `BACKUP_FROM_STANDBY=${fromStandby} read ${standby.name}`);
    assert.equal(finished['serverRole'], 'standby');
    ids.push((JSON.parse(created.stdout) as { id: string }).id);
  }
  const restored = await runCli('pms-backup', ['restore', ids[1]!, '--target-db', 'from_standby', '--json'], backupEnv);
  assert.equal(restored.code, 0, restored.stderr);
  assert.equal(
    await cluster.psql(leader, READINGS_DIGEST, 'from_standby'),
    await cluster.psql(leader, READINGS_DIGEST, 'patient_telemetry'),
    'the copy restored on the new primary holds exactly the readings stored',
  );
});

test('after the failover, retention given the same list reaches the new primary: it recreates a partition dropped there', async () => {
  const { leader, env: listed } = await afterFailover();
  const newest = await cluster.psql(
    leader,
    "SELECT max(c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'telemetry.reading'::regclass AND c.relname ~ '^reading_p[0-9]{4}_[0-9]{2}$'",
    'patient_telemetry',
  );
  assert.match(newest, /^reading_p\d{4}_\d{2}$/);
  // A future month, so empty: retention must create it again, which only the primary can.
  await cluster.psql(leader, `DROP TABLE telemetry.${newest}`, 'patient_telemetry');
  const result = await runCli('pms-telemetry', ['retention', '--json'], listed);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(await cluster.psql(leader, `SELECT to_regclass('telemetry.${newest}') IS NOT NULL`, 'patient_telemetry'), 't');
});
