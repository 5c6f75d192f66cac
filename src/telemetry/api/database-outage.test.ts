// test-layer: alone: stops the database under a running API and times its recovery
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { openTelemetryPool } from '../db/telemetry-pool.js';
import { LogCapture, PATIENT_A, type TelemetryTestDb, heartRate, startTelemetryTestDb } from '../testing/telemetry-harness.js';
import { buildServer } from './build-server.js';

let db: TelemetryTestDb;
let pool: pg.Pool;
let app: FastifyInstance;

before(async () => {
  db = await startTelemetryTestDb();
  const config = db.ingestConfig({
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
  await db?.destroy();
});

test('the database stopping mid-load gives 503, never 200 for an unstored reading, and no acknowledged reading is missing after it returns', async () => {
  const devices = ['out-1', 'out-2', 'out-3', 'out-4'];
  const tokens = await Promise.all(devices.map((d) => db.registerDevice(d, PATIENT_A)));
  const acknowledged = new Set<string>();
  const statuses = new Map<number, number>();
  let phase: 'up' | 'down' | 'back' = 'up';
  const seen503 = new Set<number>();
  const okAfterReturn = new Set<number>();
  let batchesAcked = 0;

  // Each device behaves like real firmware: resend the same batch until it is acknowledged.
  const device = async (i: number): Promise<void> => {
    for (let n = 0; ; n += 1) {
      const batch = { readings: Array.from({ length: 25 }, (_, k) => heartRate(`${devices[i]}-${n}-${k}`, 70, 60_000 + k)) };
      for (;;) {
        const res = await app.inject({
          method: 'POST',
          url: '/v1/readings',
          headers: { authorization: `Bearer ${tokens[i]}` },
          payload: batch,
        });
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        if (res.statusCode === 200) {
          const body = res.json() as { accepted: number; duplicates: number; rejected: unknown[] };
          assert.equal(body.accepted + body.duplicates, 25);
          for (const r of batch.readings) acknowledged.add(r['readingId'] as string);
          batchesAcked += 1;
          if (phase === 'back') okAfterReturn.add(i);
          break;
        }
        assert.equal(res.statusCode, 503, `unexpected status ${res.statusCode}: ${res.body}`);
        assert.equal(res.json().error.code, 'database-unavailable');
        seen503.add(i);
        if (phase === 'back' && okAfterReturn.size === devices.length) return;
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (phase === 'back' && okAfterReturn.size === devices.length) return;
      if (phase === 'down' && seen503.size === devices.length) await new Promise((resolve) => setImmediate(resolve));
    }
  };

  const load = Promise.all(devices.map((_, i) => device(i)));
  const controller = (async () => {
    while (batchesAcked < 20) await new Promise((resolve) => setTimeout(resolve, 5));
    phase = 'down';
    await db.cluster.stop('immediate');
    while (seen503.size < devices.length) await new Promise((resolve) => setTimeout(resolve, 5));
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 503);
    await db.cluster.start();
    phase = 'back';
  })();
  await Promise.all([load, controller]);

  assert.ok((statuses.get(503) ?? 0) >= devices.length, 'every device saw the outage');
  const { rows } = await db.admin.query<{ reading_id: string }>("SELECT reading_id FROM telemetry.reading WHERE device_id LIKE 'out-%'");
  const stored = new Set(rows.map((r) => r.reading_id));
  const missing = [...acknowledged].filter((id) => !stored.has(id));
  assert.deepEqual(missing, [], 'every acknowledged reading is stored');
  assert.equal(rows.length, stored.size, 'no reading is stored twice');
  assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
});
