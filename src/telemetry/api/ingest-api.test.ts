import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { revokeDevice } from '../devices/device-registry.js';
import { openTelemetryPool } from '../db/telemetry-pool.js';
import { registerReader } from '../readers/reader-registry.js';
import { LogCapture, PATIENT_A, PATIENT_B, type TelemetryTestDb, heartRate, startTelemetryTestDb } from '../testing/telemetry-harness.js';
import { REJECTION_REASONS } from '../validation/rejection-reason.js';
import { buildServer } from './build-server.js';

let db: TelemetryTestDb;
let pool: pg.Pool;
let app: FastifyInstance;
let metricsApp: FastifyInstance;
let base: string;
let metricsBase: string;
const logs = new LogCapture();
const tokens: Record<string, string> = {};

async function post(
  path: string,
  token: string | undefined,
  body: unknown,
  contentType = 'application/json',
): Promise<{ status: number; json: any; headers: Headers }> {
  const headers: Record<string, string> = { 'content-type': contentType };
  if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
  const res = await fetch(`${base}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

async function get(path: string, token?: string): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(`${base}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await db.admin.query<{ n: string }>(sql, params);
  return Number(rows[0]?.n);
}

const iso = (agoMs: number) => new Date(Date.now() - agoMs).toISOString();

describe('pms-telemetry ingest API against real PostgreSQL', () => {
  before(async () => {
    db = await startTelemetryTestDb();
    for (const [device, patient] of [
      ['dev-a', PATIENT_A],
      ['dev-b', PATIENT_B],
      ['dev-c', PATIENT_A],
      ['dev-d', PATIENT_A],
      ['dev-e', PATIENT_B],
      ['dev-f', PATIENT_A],
    ] as const) {
      tokens[device] = await db.registerDevice(device, patient);
    }
    tokens['reader'] = (await registerReader(db.admin, 'ward-dashboard', { allPatients: true })).token;
    // The server connects as a role holding only pms_telemetry_ingest, as in production.
    const config = db.ingestConfig({ TELEMETRY_RATE_LIMIT_BURST: '100000', TELEMETRY_RATE_LIMIT_PER_MINUTE: '100000' });
    pool = await openTelemetryPool(config);
    ({ app, metricsApp } = await buildServer({ config, pool, logStream: logs }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    await metricsApp.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    const metricsAddress = metricsApp.server.address();
    metricsBase = `http://127.0.0.1:${typeof metricsAddress === 'object' && metricsAddress ? metricsAddress.port : 0}`;
  });

  after(async () => {
    await app?.close();
    await pool?.end();
    await db?.destroy();
  });

  test('every rejection reason is reported with its index and the reading is quarantined with that reason', async () => {
    const now = Date.now();
    const readings: unknown[] = [
      heartRate('ok-1'),
      42, // invalid-reading
      { ...heartRate('x'), readingId: '' }, // invalid-reading-id
      { ...heartRate('rej-field'), colour: 'blue' }, // unknown-field
      { ...heartRate('rej-code'), code: '1234-5' }, // unknown-code
      { ...heartRate('rej-unit'), unit: 'bpm' }, // wrong-unit
      { ...heartRate('rej-value'), value: '72' }, // invalid-value
      heartRate('rej-implausible', 900), // implausible-value
      { readingId: 'rej-components', code: '85354-9', unit: 'mm[Hg]', measuredAt: iso(1000), components: [{ code: '8480-6', value: 120 }] }, // invalid-components
      { ...heartRate('rej-time'), measuredAt: '2025-03-01T09:30:00' }, // invalid-measured-at (no offset)
      { ...heartRate('rej-future'), measuredAt: new Date(now + 10 * 60_000).toISOString() }, // measured-in-future
      { ...heartRate('rej-old'), measuredAt: new Date(now - 31 * 86_400_000).toISOString() }, // measured-too-old
      { ...heartRate('rej-patient'), patientId: PATIENT_B }, // patient-mismatch
    ];
    const res = await post('/v1/readings', tokens['dev-a'], { readings });
    assert.equal(res.status, 200);
    assert.equal(res.json.accepted, 1);
    const expected = [
      'invalid-reading',
      'invalid-reading-id',
      'unknown-field',
      'unknown-code',
      'wrong-unit',
      'invalid-value',
      'implausible-value',
      'invalid-components',
      'invalid-measured-at',
      'measured-in-future',
      'measured-too-old',
      'patient-mismatch',
    ];
    assert.deepEqual(
      res.json.rejected.map((r: { reason: string }) => r.reason),
      expected,
    );
    assert.deepEqual(
      res.json.rejected.map((r: { index: number }) => r.index),
      expected.map((_, i) => i + 1),
    );
    const { rows } = await db.admin.query<{ reason: string; payload: unknown; patient_nhs_number: string }>(
      "SELECT reason, payload, patient_nhs_number FROM telemetry.quarantined_reading WHERE device_id = 'dev-a' ORDER BY quarantine_id",
    );
    assert.deepEqual(
      rows.map((r) => r.reason),
      expected,
    );
    assert.deepEqual(rows[0]?.payload, 42, 'the rejected reading is kept exactly as sent');
    assert.ok(rows.every((r) => r.patient_nhs_number === PATIENT_A));
    // invalid-status is covered by the FHIR test, reading-conflict by corrections.test.ts and the
    // readings turned away before parsing by ingest-hardening.test.ts; together they cover the catalogue.
    const beforeParsing = ['reading-too-large', 'reading-too-deep', 'invalid-utf8', 'malformed-reading', 'invalid-character'];
    assert.deepEqual([...expected, 'invalid-status', 'reading-conflict', ...beforeParsing].sort(), [...REJECTION_REASONS].sort());
  });

  test('a resent batch is counted as duplicates and creates no second row', async () => {
    const batch = { readings: Array.from({ length: 20 }, (_, i) => heartRate(`resend-${i}`, 60 + i, 120_000 + i * 1000)) };
    const first = await post('/v1/readings', tokens['dev-a'], batch);
    assert.deepEqual(first.json, { accepted: 20, duplicates: 0, rejected: [] });
    const again = await post('/v1/readings', tokens['dev-a'], batch);
    assert.deepEqual(again.json, { accepted: 0, duplicates: 20, rejected: [] });
    assert.equal(await count("SELECT count(*) AS n FROM telemetry.reading WHERE reading_id LIKE 'resend-%'"), 20);
  });

  test('a reading resent with the same id but another measuredAt is refused as a conflict, not a second row or a silent drop', async () => {
    const original = await post('/v1/readings', tokens['dev-a'], { readings: [heartRate('clock-fix-1', 71, 200_000)] });
    assert.deepEqual(original.json, { accepted: 1, duplicates: 0, rejected: [] });
    const moved = await post('/v1/readings', tokens['dev-a'], { readings: [heartRate('clock-fix-1', 71, 140_000)] });
    assert.equal(moved.json.accepted, 0);
    assert.equal(moved.json.rejected[0].reason, 'reading-conflict', 'a changed time needs status amended or corrected');
    assert.equal(await count("SELECT count(*) AS n FROM telemetry.reading WHERE reading_id = 'clock-fix-1'"), 1);
  });

  test('concurrent devices resending the same batches never create a second row', async () => {
    const devices = ['dev-c', 'dev-d', 'dev-e', 'dev-f'];
    const batches = devices.map((d) => ({
      readings: Array.from({ length: 50 }, (_, i) => heartRate(`conc-${d}-${i}`, 70, 300_000 + i * 1000)),
    }));
    // Each device sends its batch four times at once (a retrying device on a flaky link).
    const replies = await Promise.all(
      devices.flatMap((d, i) => Array.from({ length: 4 }, () => post('/v1/readings', tokens[d], batches[i]))),
    );
    assert.ok(replies.every((r) => r.status === 200));
    const accepted = replies.reduce((n, r) => n + r.json.accepted, 0);
    const duplicates = replies.reduce((n, r) => n + r.json.duplicates, 0);
    assert.equal(accepted, 200, 'each reading is acknowledged as stored exactly once');
    assert.equal(duplicates, 600);
    assert.equal(await count("SELECT count(*) AS n FROM telemetry.reading WHERE reading_id LIKE 'conc-%'"), 200);
    assert.equal(
      await count(
        "SELECT count(*) AS n FROM (SELECT device_id, reading_id FROM telemetry.reading WHERE reading_id LIKE 'conc-%' GROUP BY 1, 2 HAVING count(*) > 1) d",
      ),
      0,
    );
  });

  test('a device can only write its own patient’s readings, whatever the payload says', async () => {
    const res = await post('/v1/readings', tokens['dev-b'], {
      readings: [heartRate('b-own'), { ...heartRate('b-other'), patientId: PATIENT_A }],
    });
    assert.equal(res.json.accepted, 1);
    assert.equal(res.json.rejected[0].reason, 'patient-mismatch');
    const { rows } = await db.admin.query("SELECT reading_id, patient_nhs_number FROM telemetry.reading WHERE device_id = 'dev-b'");
    assert.deepEqual(rows, [{ reading_id: 'b-own', patient_nhs_number: PATIENT_B }]);
  });

  test('a reading whose month has no partition yet gets one created on demand by the ingest role', async () => {
    // A server whose clock runs 120 days ahead receives a reading for a month no partition covers
    // yet (migrate creates two months ahead), as a replica would for data outside the window.
    const shift = 120 * 86_400_000;
    const measured = new Date(Date.now() + shift - 60_000);
    const part = `reading_p${measured.getUTCFullYear()}_${String(measured.getUTCMonth() + 1).padStart(2, '0')}`;
    assert.equal(await count('SELECT count(*) AS n FROM pg_class WHERE relname = $1', [part]), 0);
    const shifted = await buildServer({ config: db.ingestConfig(), pool, logStream: new LogCapture(), now: () => Date.now() + shift });
    try {
      const res = await shifted.app.inject({
        method: 'POST',
        url: '/v1/readings',
        headers: { authorization: `Bearer ${tokens['dev-a']}` },
        payload: { readings: [{ ...heartRate('ahead-1'), measuredAt: measured.toISOString() }] },
      });
      assert.deepEqual(res.json(), { accepted: 1, duplicates: 0, rejected: [] });
    } finally {
      await shifted.app.close();
    }
    assert.equal(await count(`SELECT count(*) AS n FROM telemetry.${part} WHERE reading_id = 'ahead-1'`), 1);
  });

  test('401 without a token, with an unknown, revoked or reader token', async () => {
    const body = { readings: [heartRate('auth-1')] };
    assert.equal((await post('/v1/readings', undefined, body)).status, 401);
    assert.equal((await post('/v1/readings', 'pmsd_notatoken', body)).status, 401);
    assert.equal((await post('/v1/readings', tokens['reader'], body)).status, 401);
    const revoked = await db.registerDevice('dev-revoked', PATIENT_A);
    assert.equal((await post('/v1/readings', revoked, body)).status, 200);
    await revokeDevice(db.admin, 'dev-revoked');
    const after = await post('/v1/readings', revoked, { readings: [heartRate('auth-2')] });
    assert.equal(after.status, 401);
    assert.equal(after.json.error.code, 'unauthorized');
    assert.equal(await count("SELECT count(*) AS n FROM telemetry.reading WHERE reading_id = 'auth-2'"), 0);
  });

  test('400 for malformed JSON and for bodies that are not {"readings":[...]}', async () => {
    const malformed = await post('/v1/readings', tokens['dev-a'], '{"readings": [');
    assert.equal(malformed.status, 400);
    assert.equal(malformed.json.error.code, 'malformed-json');
    for (const body of [[], { readings: {} }, { readings: [] }, { readings: [heartRate('s')], extra: 1 }, 'null']) {
      const res = await post('/v1/readings', tokens['dev-a'], body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.json.error.code, 'invalid-body');
    }
  });

  test('413 for a body over 1 MiB, counted as it streams (chunked, no Content-Length) and when declared', async () => {
    const url = new URL(base);
    const send = (headers: Record<string, string>, chunks: number) =>
      new Promise<number>((resolve, reject) => {
        const req = httpRequest(
          {
            host: url.hostname,
            port: url.port,
            path: '/v1/readings',
            method: 'POST',
            headers: { authorization: `Bearer ${tokens['dev-a']}`, 'content-type': 'application/json', ...headers },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', (error: NodeJS.ErrnoException) =>
          error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error),
        );
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        req.write('{"readings":[');
        let sent = 0;
        const pump = (): void => {
          while (sent < chunks) {
            sent += 1;
            if (!req.write(chunk)) {
              req.once('drain', pump);
              return;
            }
          }
          req.end(']}');
        };
        pump();
      });
    assert.equal(await send({ 'transfer-encoding': 'chunked' }, 20), 413);
    assert.equal(await send({ 'content-length': String(20 * 64 * 1024 + 15) }, 20), 413);
    // Just under the limit is parsed (and then rejected for being empty, which proves it was read).
    const small = await post('/v1/readings', tokens['dev-a'], `{"readings":[${' '.repeat(1024 * 1024 - 100)}]}`);
    assert.equal(small.status, 400);
  });

  test('429 past the per-device rate limit, with Retry-After, without affecting other devices', async () => {
    const strictPool = await openTelemetryPool(db.ingestConfig());
    const strict = await buildServer({
      config: db.ingestConfig({ TELEMETRY_RATE_LIMIT_BURST: '2', TELEMETRY_RATE_LIMIT_PER_MINUTE: '1' }),
      pool: strictPool,
      logStream: new LogCapture(),
    });
    try {
      const send = (device: string, id: string) =>
        strict.app.inject({
          method: 'POST',
          url: '/v1/readings',
          headers: { authorization: `Bearer ${tokens[device]}` },
          payload: { readings: [heartRate(id)] },
        });
      assert.equal((await send('dev-c', 'rl-1')).statusCode, 200);
      assert.equal((await send('dev-c', 'rl-2')).statusCode, 200);
      const limited = await send('dev-c', 'rl-3');
      assert.equal(limited.statusCode, 429);
      assert.ok(Number(limited.headers['retry-after']) >= 1);
      assert.equal((await send('dev-d', 'rl-4')).statusCode, 200, 'another device is not limited');
      assert.equal(await count("SELECT count(*) AS n FROM telemetry.reading WHERE reading_id = 'rl-3'"), 0);
    } finally {
      await strict.app.close();
      await strictPool.end();
    }
  });

  test('the reader API returns one patient’s readings by code and time range, and refuses device tokens', async () => {
    await post('/v1/readings', tokens['dev-f'], {
      readings: [
        {
          readingId: 'q-hr',
          code: '8867-4',
          value: 80,
          unit: '/min',
          measuredAt: '2000-01-01T00:00:00Z'.replace('2000-01-01T00:00:00Z', iso(3600_000)),
        },
        {
          readingId: 'q-bp',
          code: '85354-9',
          unit: 'mm[Hg]',
          measuredAt: new Date(Date.now() - 1800_000).toISOString().replace('Z', '+00:00'),
          components: [
            { code: '8480-6', value: 131, unit: 'mm[Hg]' },
            { code: '8462-4', value: 85 },
          ],
        },
        { readingId: 'q-temp', code: '8310-5', value: 37.2, unit: 'Cel', measuredAt: formatOffset(Date.now() - 900_000, 60) },
      ],
    });
    assert.equal((await get(`/v1/patients/${PATIENT_A}/readings`, tokens['dev-f'])).status, 401, 'a device token is not a reader token');
    assert.equal((await get(`/v1/patients/${PATIENT_A}/readings`)).status, 401);
    const bp = await get(`/v1/patients/${PATIENT_A}/readings?code=85354-9&from=${encodeURIComponent(iso(2 * 3600_000))}`, tokens['reader']);
    assert.equal(bp.status, 200);
    const mine = bp.json.readings.filter((r: { deviceId: string }) => r.deviceId === 'dev-f');
    assert.equal(mine.length, 1);
    assert.deepEqual(mine[0].components, [
      { code: '8480-6', value: 131, unit: 'mm[Hg]' },
      { code: '8462-4', value: 85, unit: 'mm[Hg]' },
    ]);
    const temp = await get(`/v1/patients/${PATIENT_A}/readings?code=8310-5`, tokens['reader']);
    assert.equal(temp.json.readings.length, 1);
    assert.match(temp.json.readings[0].measuredAt, /\+01:00$/, 'the device’s own offset is returned');
    assert.equal(temp.json.readings[0].value, 37.2);
    const patientB = await get(`/v1/patients/${PATIENT_B}/readings?limit=1000`, tokens['reader']);
    assert.ok(patientB.json.readings.every((r: { deviceId: string }) => ['dev-b', 'dev-e'].includes(r.deviceId)));
    assert.equal((await get('/v1/patients/1234567890/readings', tokens['reader'])).status, 400);
    assert.equal((await get(`/v1/patients/${PATIENT_A}/readings?limit=0`, tokens['reader'])).status, 400);
  });

  test('FHIR batch Bundles map Observations to the same rows and reply per entry', async () => {
    const obs = (id: string, extra: Record<string, unknown>) => ({
      resource: {
        resourceType: 'Observation',
        status: 'final',
        identifier: [{ system: 'urn:dev', value: id }],
        effectiveDateTime: iso(60_000),
        ...extra,
      },
      request: { method: 'POST', url: 'Observation' },
    });
    const loinc = (code: string) => ({ coding: [{ system: 'http://loinc.org', code }] });
    const bundle = {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        obs('f-spo2', { code: loinc('2708-6'), valueQuantity: { value: 97, unit: '%', system: 'http://unitsofmeasure.org', code: '%' } }),
        obs('f-bp', {
          code: loinc('85354-9'),
          component: [
            { code: loinc('8480-6'), valueQuantity: { value: 118, system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
            { code: loinc('8462-4'), valueQuantity: { value: 76, system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
          ],
        }),
        obs('f-bad-unit', { code: loinc('8310-5'), valueQuantity: { value: 98.6, system: 'http://unitsofmeasure.org', code: '[degF]' } }),
        {
          resource: {
            ...obs('f-status', { code: loinc('8867-4'), valueQuantity: { value: 70, code: '/min' } }).resource,
            status: 'cancelled',
          },
        },
        obs('f-other-patient', {
          code: loinc('8867-4'),
          valueQuantity: { value: 70, code: '/min' },
          subject: { identifier: { system: 'https://fhir.nhs.uk/Id/nhs-number', value: PATIENT_B } },
        }),
      ],
    };
    const res = await post('/fhir/Bundle', tokens['dev-a'], bundle, 'application/fhir+json');
    assert.equal(res.status, 200);
    assert.equal(res.json.type, 'batch-response');
    assert.deepEqual(
      res.json.entry.map((e: { response: { status: string } }) => e.response.status),
      ['201 Created', '201 Created', '422 Unprocessable Entity', '422 Unprocessable Entity', '422 Unprocessable Entity'],
    );
    assert.match(res.json.entry[3].response.outcome.issue[0].diagnostics, /^invalid-status/);
    const again = await post('/fhir/Bundle', tokens['dev-a'], bundle, 'application/fhir+json');
    assert.equal(again.json.entry[0].response.status, '200 OK', 'a resent entry is a duplicate');
    const { rows } = await db.admin.query(
      "SELECT reading_id, value, systolic, diastolic, unit FROM telemetry.reading WHERE reading_id LIKE 'f-%' ORDER BY reading_id",
    );
    assert.deepEqual(rows, [
      { reading_id: 'f-bp', value: null, systolic: 118, diastolic: 76, unit: 'mm[Hg]' },
      { reading_id: 'f-spo2', value: 97, systolic: null, diastolic: null, unit: '%' },
    ]);
    assert.equal(
      await count("SELECT count(*) AS n FROM telemetry.quarantined_reading WHERE source = 'fhir' AND reason = 'invalid-status'"),
      2,
    );
    assert.equal((await post('/fhir/Bundle', tokens['dev-a'], { resourceType: 'Patient' }, 'application/fhir+json')).status, 400);
  });

  test('a FHIR transaction with a rejected entry stores none of its entries and quarantines the rejected one', async () => {
    const entry = (id: string, value: number) => ({
      resource: {
        resourceType: 'Observation',
        status: 'final',
        identifier: [{ value: id }],
        effectiveDateTime: iso(60_000),
        code: { coding: [{ system: 'http://loinc.org', code: '9279-1' }] },
        valueQuantity: { value, code: '/min' },
      },
    });
    const res = await post(
      '/fhir/Bundle',
      tokens['dev-a'],
      { resourceType: 'Bundle', type: 'transaction', entry: [entry('t-ok', 16), entry('t-bad', 500)] },
      'application/fhir+json',
    );
    assert.equal(res.status, 400);
    assert.equal(res.json.resourceType, 'OperationOutcome');
    assert.equal(await count("SELECT count(*) AS n FROM telemetry.reading WHERE reading_id LIKE 't-%'"), 0);
    assert.equal(await count("SELECT count(*) AS n FROM telemetry.quarantined_reading WHERE reading_id = 't-bad'"), 1);
    const ok = await post(
      '/fhir/Bundle',
      tokens['dev-a'],
      { resourceType: 'Bundle', type: 'transaction', entry: [entry('t-ok', 16)] },
      'application/fhir+json',
    );
    assert.equal(ok.status, 200);
    assert.equal(ok.json.type, 'transaction-response');
    assert.equal(await count("SELECT count(*) AS n FROM telemetry.reading WHERE reading_id = 't-ok'"), 1);
  });

  test('/healthz, /readyz and /metrics (on the metrics port only) report process, database and counters by route, outcome and reason', async () => {
    assert.deepEqual((await get('/healthz')).json, { status: 'ok' });
    assert.deepEqual((await get('/readyz')).json, { status: 'ready' });
    assert.equal((await get('/metrics')).status, 404, 'the API port does not serve /metrics');
    const scrape = await fetch(`${metricsBase}/metrics`);
    assert.equal(scrape.status, 200);
    const metrics = await scrape.text();
    assert.equal((await fetch(`${metricsBase}/v1/readings`, { method: 'POST' })).status, 404, 'the metrics port serves nothing else');
    assert.equal((await fetch(`${metricsBase}/healthz`)).status, 404);
    assert.match(metrics, /pms_telemetry_http_requests_total\{route="\/v1\/readings",method="POST",status="200"\} \d+/);
    assert.match(metrics, /pms_telemetry_http_requests_total\{route="\/v1\/readings",method="POST",status="401"\} \d+/);
    assert.match(metrics, /pms_telemetry_http_requests_total\{route="\/v1\/patients\/:nhsNumber\/readings",method="GET",status="200"\}/);
    assert.match(metrics, /pms_telemetry_readings_total\{outcome="accepted",reason=""\} \d+/);
    assert.match(metrics, /pms_telemetry_readings_total\{outcome="duplicate",reason=""\} \d+/);
    assert.match(metrics, /pms_telemetry_readings_total\{outcome="rejected",reason="measured-too-old"\} 1/);
    assert.match(metrics, /pms_telemetry_batch_duration_seconds_count\{source="v1"\} \d+/);
    assert.match(metrics, /pms_telemetry_db_pool_connections\{state="total"\} \d+/);
    assert.doesNotMatch(metrics, new RegExp(`${PATIENT_A}|${PATIENT_B}`));
  });

  test('JSON logs carry route patterns but no NHS numbers, tokens or reading contents', () => {
    const text = logs.text();
    assert.ok(logs.lines.length > 10);
    for (const line of logs.lines) JSON.parse(line);
    assert.match(text, /"route":"\/v1\/patients\/:nhsNumber\/readings"/);
    assert.doesNotMatch(text, new RegExp(`${PATIENT_A}|${PATIENT_B}`));
    assert.doesNotMatch(text, /pmsd_|pmsr_/);
    assert.doesNotMatch(text, /resend-|conc-dev/);
  });
});

function formatOffset(epochMs: number, offsetMinutes: number): string {
  const local = new Date(epochMs + offsetMinutes * 60_000).toISOString().slice(0, 19);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}
