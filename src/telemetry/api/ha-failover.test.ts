import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { loadTelemetryConfig } from '../../config/telemetry-config.js';
import { type PatroniCluster, startPatroniCluster } from '../../testing/patroni-harness.js';
import { runCli } from '../../testing/run-cli.js';
import { registerDevice } from '../devices/device-registry.js';
import { openTelemetryPool } from '../db/telemetry-pool.js';
import { LogCapture, PATIENT_A, heartRate } from '../testing/telemetry-harness.js';
import { buildServer } from './build-server.js';

let cluster: PatroniCluster;
let env: Record<string, string>;
let admin: pg.Pool;
let pool: pg.Pool;
let app: FastifyInstance;

before(async () => {
  // Strict, as prod runs it (components/postgres-ha, patroni-config.ts): no commit is acknowledged
  // without a second member.
  cluster = await startPatroniCluster({ synchronousModeStrict: true });
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
