import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { openTelemetryPool } from '../db/telemetry-pool.js';
import { registerReader } from '../readers/reader-registry.js';
import { applyRetention } from '../retention/retention.js';
import { LogCapture, PATIENT_A, type TelemetryTestDb, heartRate, startTelemetryTestDb } from '../testing/telemetry-harness.js';
import { buildServer } from './build-server.js';

// Issue 14 item 2 (DCB0129): a FHIR correction used to be answered "duplicate: already stored"
// and dropped. These tests send corrections through the real API, as the ingest role, and read
// them back through the reader API and as the schema owner.

let db: TelemetryTestDb;
let pool: pg.Pool;
let app: FastifyInstance;
let base: string;
let readerToken: string;
const tokens: Record<string, string> = {};

async function send(path: string, device: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: {
      'content-type': path.startsWith('/fhir') ? 'application/fhir+json' : 'application/json',
      authorization: `Bearer ${tokens[device]}`,
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

async function read(query = ''): Promise<any[]> {
  const res = await fetch(`${base}/v1/patients/${PATIENT_A}/readings?limit=1000${query}`, {
    headers: { authorization: `Bearer ${readerToken}` },
  });
  assert.equal(res.status, 200);
  return ((await res.json()) as { readings: any[] }).readings;
}

async function readOne(device: string, readingId: string, query = ''): Promise<any[]> {
  return (await read(query)).filter((r) => r.deviceId === device && r.readingId === readingId);
}

async function stored(device: string, readingId: string): Promise<{ version: number; status: string; value: number | null }[]> {
  const { rows } = await db.admin.query(
    'SELECT version, status, value FROM telemetry.reading WHERE device_id = $1 AND reading_id = $2 ORDER BY version',
    [device, readingId],
  );
  return rows;
}

const measuredAt = new Date(Date.now() - 5 * 60_000).toISOString();

function observation(id: string, status: string, value: number, at = measuredAt): Record<string, unknown> {
  return {
    resource: {
      resourceType: 'Observation',
      status,
      identifier: [{ system: 'urn:dev', value: id }],
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      effectiveDateTime: at,
      valueQuantity: { value, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    },
    request: { method: 'POST', url: 'Observation' },
  };
}

const bundle = (type: 'batch' | 'transaction', ...entry: Record<string, unknown>[]) => ({ resourceType: 'Bundle', type, entry });
const statuses = (res: { json: any }) => res.json.entry.map((e: { response: { status: string } }) => e.response.status);

describe('FHIR corrections stored as FHIR means them (real API, real PostgreSQL)', () => {
  before(async () => {
    db = await startTelemetryTestDb();
    for (const device of ['dev-fhir', 'dev-v1', 'dev-race', 'dev-tx']) tokens[device] = await db.registerDevice(device, PATIENT_A);
    readerToken = (await registerReader(db.admin, 'ward', { allPatients: true })).token;
    const config = db.ingestConfig({ TELEMETRY_RATE_LIMIT_BURST: '100000', TELEMETRY_RATE_LIMIT_PER_MINUTE: '100000' });
    pool = await openTelemetryPool(config);
    ({ app } = await buildServer({ config, pool, logStream: new LogCapture() }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });

  after(async () => {
    await app?.close();
    await pool?.end();
    await db?.destroy();
  });

  test('amended f-1 (70 then 99) is a new version readers see as current; version 1 is kept', async () => {
    const first = await send('/fhir/Bundle', 'dev-fhir', bundle('batch', observation('f-1', 'final', 70)));
    assert.deepEqual(statuses(first), ['201 Created']);
    const amended = await send('/fhir/Bundle', 'dev-fhir', bundle('batch', observation('f-1', 'amended', 99)));
    assert.equal(amended.status, 200);
    assert.deepEqual(statuses(amended), ['201 Created'], 'a correction is stored, not answered as a duplicate');
    assert.equal(first.json.entry[0].response.etag, 'W/"1"');
    assert.equal(amended.json.entry[0].response.etag, 'W/"2"');
    assert.match(amended.json.entry[0].response.outcome.issue[0].diagnostics, /version 2/);
    const current = await readOne('dev-fhir', 'f-1');
    assert.equal(current.length, 1, 'readers see one reading, its current version');
    assert.deepEqual(
      { value: current[0].value, status: current[0].status, version: current[0].version },
      { value: 99, status: 'amended', version: 2 },
    );
    assert.deepEqual(await stored('dev-fhir', 'f-1'), [
      { version: 1, status: 'final', value: 70 },
      { version: 2, status: 'amended', value: 99 },
    ]);
  });

  test('corrected is a new version too, and the whole history is kept and readable', async () => {
    await send('/fhir/Bundle', 'dev-fhir', bundle('batch', observation('f-2', 'final', 64)));
    const corrected = await send('/fhir/Bundle', 'dev-fhir', bundle('batch', observation('f-2', 'corrected', 46)));
    assert.deepEqual(statuses(corrected), ['201 Created']);
    const again = await send('/fhir/Bundle', 'dev-fhir', bundle('batch', observation('f-2', 'corrected', 47)));
    assert.equal(again.json.entry[0].response.etag, 'W/"3"');
    const current = await readOne('dev-fhir', 'f-2');
    assert.deepEqual(
      current.map((r) => [r.version, r.status, r.value]),
      [[3, 'corrected', 47]],
    );
    const history = await readOne('dev-fhir', 'f-2', '&history=true');
    assert.deepEqual(
      history.map((r) => [r.version, r.status, r.value, r.current]),
      [
        [1, 'final', 64, false],
        [2, 'corrected', 46, false],
        [3, 'corrected', 47, true],
      ],
    );
  });

  test('entered-in-error withdraws the reading: excluded by default, shown with its status on request', async () => {
    await send('/fhir/Bundle', 'dev-fhir', bundle('batch', observation('f-3', 'final', 180)));
    assert.equal((await readOne('dev-fhir', 'f-3')).length, 1);
    const withdrawn = await send('/fhir/Bundle', 'dev-fhir', bundle('batch', observation('f-3', 'entered-in-error', 180)));
    assert.deepEqual(statuses(withdrawn), ['201 Created']);
    assert.deepEqual(await readOne('dev-fhir', 'f-3'), [], 'a reading entered in error is not shown by default');
    const shown = await readOne('dev-fhir', 'f-3', '&enteredInError=include');
    assert.deepEqual(
      shown.map((r) => [r.version, r.status, r.value]),
      [[2, 'entered-in-error', 180]],
    );
    const history = await readOne('dev-fhir', 'f-3', '&history=true');
    assert.deepEqual(history, [], 'history of a withdrawn reading needs the flag too');
    assert.equal((await readOne('dev-fhir', 'f-3', '&history=true&enteredInError=include')).length, 2);
    const { rows } = await db.admin.query(
      "SELECT filters FROM telemetry.reader_access WHERE reader_name = 'ward' ORDER BY access_id DESC LIMIT 1",
    );
    assert.deepEqual(rows[0].filters, { code: null, from: null, to: null, limit: 1000, enteredInError: 'include', history: true });
    const bad = await fetch(`${base}/v1/patients/${PATIENT_A}/readings?enteredInError=yes`, {
      headers: { authorization: `Bearer ${readerToken}` },
    });
    assert.equal(bad.status, 400);
  });

  test('preliminary is visible as preliminary, and final after it is a new version without a correction status', async () => {
    await send('/fhir/Bundle', 'dev-fhir', bundle('batch', observation('f-4', 'preliminary', 88)));
    assert.deepEqual(
      (await readOne('dev-fhir', 'f-4')).map((r) => [r.status, r.value]),
      [['preliminary', 88]],
    );
    const final = await send('/fhir/Bundle', 'dev-fhir', bundle('batch', observation('f-4', 'final', 86)));
    assert.deepEqual(statuses(final), ['201 Created']);
    assert.deepEqual(
      (await readOne('dev-fhir', 'f-4')).map((r) => [r.version, r.status, r.value]),
      [[2, 'final', 86]],
    );
  });

  test('an identical resend is a duplicate (no new version), also when an earlier version is retried late', async () => {
    const original = observation('f-5', 'final', 75);
    const amended = observation('f-5', 'amended', 77);
    assert.deepEqual(statuses(await send('/fhir/Bundle', 'dev-fhir', bundle('batch', original))), ['201 Created']);
    assert.deepEqual(statuses(await send('/fhir/Bundle', 'dev-fhir', bundle('batch', original))), ['200 OK']);
    assert.deepEqual(statuses(await send('/fhir/Bundle', 'dev-fhir', bundle('batch', amended))), ['201 Created']);
    const retries = await send('/fhir/Bundle', 'dev-fhir', bundle('batch', amended, original));
    assert.deepEqual(statuses(retries), ['200 OK', '200 OK']);
    assert.deepEqual(
      retries.json.entry.map((e: { response: { etag: string } }) => e.response.etag),
      ['W/"2"', 'W/"1"'],
    );
    assert.match(retries.json.entry[0].response.outcome.issue[0].diagnostics, /duplicate/);
    assert.equal((await stored('dev-fhir', 'f-5')).length, 2);
    assert.equal((await readOne('dev-fhir', 'f-5'))[0].value, 77, 'a late retry of version 1 does not bring it back');
  });

  test('a changed resend without a correction status is a conflict: 422 with the reason, quarantined, the stored reading unchanged', async () => {
    await send('/fhir/Bundle', 'dev-fhir', bundle('batch', observation('f-6', 'final', 70)));
    const changed = await send('/fhir/Bundle', 'dev-fhir', bundle('batch', observation('f-6', 'final', 99)));
    assert.deepEqual(statuses(changed), ['422 Unprocessable Entity']);
    assert.match(changed.json.entry[0].response.outcome.issue[0].diagnostics, /^reading-conflict: .*amended or corrected/);
    assert.deepEqual(await stored('dev-fhir', 'f-6'), [{ version: 1, status: 'final', value: 70 }]);
    const { rows } = await db.admin.query(
      "SELECT reason, payload FROM telemetry.quarantined_reading WHERE device_id = 'dev-fhir' AND reading_id = 'f-6'",
    );
    assert.equal(rows.length, 1);
    assert.equal(rows[0].reason, 'reading-conflict');
    // As for every FHIR entry the validator refuses: the Observation mapped to the reading shape.
    assert.equal(rows[0].payload.value, 99, 'the refused reading is kept');
    assert.equal(rows[0].payload.status, 'final');
    const time = await send(
      '/fhir/Bundle',
      'dev-fhir',
      bundle('batch', observation('f-6', 'final', 70, new Date(Date.now() - 60_000).toISOString())),
    );
    assert.deepEqual(statuses(time), ['422 Unprocessable Entity'], 'another measured time is a change too');
  });

  test('a correction for a reading id never seen is stored as version 1 with its status', async () => {
    const res = await send('/fhir/Bundle', 'dev-fhir', bundle('batch', observation('f-7', 'amended', 101)));
    assert.deepEqual(statuses(res), ['201 Created']);
    assert.deepEqual(await stored('dev-fhir', 'f-7'), [{ version: 1, status: 'amended', value: 101 }]);
    assert.deepEqual(
      (await readOne('dev-fhir', 'f-7')).map((r) => [r.version, r.status]),
      [[1, 'amended']],
    );
  });

  test('registered, cancelled and unknown are refused as invalid-status (nothing to store), a missing status too', async () => {
    for (const status of ['registered', 'cancelled', 'unknown']) {
      const res = await send('/fhir/Bundle', 'dev-fhir', bundle('batch', observation(`f-8-${status}`, status, 70)));
      assert.deepEqual(statuses(res), ['422 Unprocessable Entity'], status);
      assert.match(res.json.entry[0].response.outcome.issue[0].diagnostics, /^invalid-status/);
    }
    const missing = observation('f-8-missing', 'final', 70);
    delete (missing['resource'] as Record<string, unknown>)['status'];
    assert.deepEqual(statuses(await send('/fhir/Bundle', 'dev-fhir', bundle('batch', missing))), ['422 Unprocessable Entity']);
  });

  test('one batch carrying the original and its correction stores both, in order', async () => {
    const res = await send('/fhir/Bundle', 'dev-fhir', bundle('batch', observation('f-9', 'final', 60), observation('f-9', 'amended', 61)));
    assert.deepEqual(statuses(res), ['201 Created', '201 Created']);
    assert.deepEqual(await stored('dev-fhir', 'f-9'), [
      { version: 1, status: 'final', value: 60 },
      { version: 2, status: 'amended', value: 61 },
    ]);
  });

  test('a transaction with a conflicting entry stores none of its entries', async () => {
    await send('/fhir/Bundle', 'dev-tx', bundle('batch', observation('t-1', 'final', 70)));
    const res = await send(
      '/fhir/Bundle',
      'dev-tx',
      bundle('transaction', observation('t-2', 'final', 71), observation('t-1', 'final', 72)),
    );
    assert.equal(res.status, 400);
    assert.match(res.json.issue[0].diagnostics, /^reading-conflict/);
    assert.deepEqual(res.json.issue[0].expression, ['Bundle.entry[1]']);
    assert.deepEqual(await stored('dev-tx', 't-2'), []);
    assert.deepEqual(await stored('dev-tx', 't-1'), [{ version: 1, status: 'final', value: 70 }]);
    const ok = await send(
      '/fhir/Bundle',
      'dev-tx',
      bundle('transaction', observation('t-2', 'final', 71), observation('t-1', 'amended', 72)),
    );
    assert.equal(ok.status, 200);
    assert.deepEqual(statuses(ok), ['201 Created', '201 Created']);
    assert.equal((await stored('dev-tx', 't-1')).length, 2);
  });

  test('concurrent corrections of one reading each get their own version, none is lost', async () => {
    await send('/fhir/Bundle', 'dev-race', bundle('batch', observation('r-1', 'final', 70)));
    const values = [80, 81, 82, 83, 84, 85];
    const replies = await Promise.all(
      values.map((v) => send('/fhir/Bundle', 'dev-race', bundle('batch', observation('r-1', 'amended', v)))),
    );
    assert.ok(replies.every((r) => statuses(r)[0] === '201 Created'));
    const versions = await stored('dev-race', 'r-1');
    assert.deepEqual(
      versions.map((v) => v.version),
      [1, 2, 3, 4, 5, 6, 7],
    );
    assert.deepEqual(
      versions
        .slice(1)
        .map((v) => v.value)
        .sort(),
      values,
    );
    const current = await readOne('dev-race', 'r-1');
    assert.equal(current.length, 1);
    assert.equal(current[0].version, 7);
  });

  test('/v1/readings has the same status field: default final, amended makes a version, a silent change is a conflict', async () => {
    const reading = heartRate('v-1', 70, 5 * 60_000);
    assert.deepEqual((await send('/v1/readings', 'dev-v1', { readings: [reading] })).json, { accepted: 1, duplicates: 0, rejected: [] });
    assert.deepEqual((await send('/v1/readings', 'dev-v1', { readings: [reading] })).json, { accepted: 0, duplicates: 1, rejected: [] });
    assert.deepEqual(
      (await send('/v1/readings', 'dev-v1', { readings: [{ ...reading, status: 'final' }] })).json,
      { accepted: 0, duplicates: 1, rejected: [] },
      'final is the default: sending it explicitly is the same reading',
    );
    const changed = await send('/v1/readings', 'dev-v1', { readings: [{ ...reading, value: 99 }] });
    assert.equal(changed.json.accepted, 0);
    assert.equal(changed.json.rejected[0].reason, 'reading-conflict');
    assert.equal(changed.json.rejected[0].readingId, 'v-1');
    const amended = await send('/v1/readings', 'dev-v1', { readings: [{ ...reading, value: 99, status: 'amended' }] });
    assert.deepEqual(amended.json, { accepted: 1, duplicates: 0, rejected: [] });
    assert.deepEqual(
      (await readOne('dev-v1', 'v-1')).map((r) => [r.version, r.status, r.value]),
      [[2, 'amended', 99]],
    );
    const bad = await send('/v1/readings', 'dev-v1', { readings: [{ ...heartRate('v-2'), status: 'cancelled' }] });
    assert.equal(bad.json.rejected[0].reason, 'invalid-status');
  });

  test('retention that drops a newer version also drops the older versions it superseded, so they never resurface', async () => {
    // Version 2 moved the measurement into an older month than version 1: dropping that month
    // must not bring version 1 back as current.
    const now = new Date();
    const lastMonth = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 28, 12));
    const thisMonth = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1, 12));
    await db.admin.query(
      `INSERT INTO telemetry.reading (patient_nhs_number, device_id, reading_id, code, value, unit, measured_at, measured_at_offset_minutes, status, version)
       VALUES ($1, 'dev-fhir', 'old-1', '8867-4', 70, '/min', $2, 0, 'final', 1), ($1, 'dev-fhir', 'old-1', '8867-4', 71, '/min', $3, 0, 'amended', 2)`,
      [PATIENT_A, thisMonth, lastMonth],
    );
    await db.admin.query(
      `INSERT INTO telemetry.reading_key (device_id, reading_id, version, measured_at) VALUES ('dev-fhir', 'old-1', 1, $1), ('dev-fhir', 'old-1', 2, $2)`,
      [thisMonth, lastMonth],
    );
    const client = await db.admin.connect();
    try {
      // Retention as of 40 days after the end of last month: last month's partition expires.
      const asOf = new Date(thisMonth.getTime() + 40 * 86_400_000);
      const plan = await applyRetention(client, { retentionDays: 40, partitionsAheadMonths: 0, dryRun: false, now: asOf });
      assert.ok(
        plan.dropped.some((d) => d.from === new Date(Date.UTC(lastMonth.getUTCFullYear(), lastMonth.getUTCMonth(), 1)).toISOString()),
      );
    } finally {
      client.release();
    }
    assert.deepEqual(await stored('dev-fhir', 'old-1'), []);
    const { rows } = await db.admin.query("SELECT count(*)::int AS n FROM telemetry.reading_key WHERE reading_id = 'old-1'");
    assert.equal(rows[0].n, 0);
  });
});
