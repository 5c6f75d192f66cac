import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { pgClientConfig } from '../../postgres/connection-options.js';
import { runCli } from '../../testing/run-cli.js';
import { buildServer } from '../api/build-server.js';
import { openTelemetryPool } from '../db/telemetry-pool.js';
import { hashToken } from '../devices/token.js';
import { checksum, migrate } from '../schema/migrate.js';
import { MIGRATIONS } from '../schema/migrations.js';
import { LogCapture, PATIENT_A, PATIENT_B, type TelemetryTestDb, heartRate, startTelemetryTestDb } from '../testing/telemetry-harness.js';
import { registerReader } from './reader-registry.js';

/** A third valid number from the NHS test range, read by nobody in these tests' scopes. */
const PATIENT_C = '9990000034';

let db: TelemetryTestDb;
let pool: pg.Pool;
let app: FastifyInstance;
let base: string;
const logs = new LogCapture();
const quiet = new LogCapture();
const tokens: Record<string, string> = {};

async function listen(server: FastifyInstance): Promise<string> {
  await server.listen({ port: 0, host: '127.0.0.1' });
  const address = server.server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
}

async function read(
  patient: string,
  token: string,
  query = '',
  at = base,
): Promise<{ status: number; json: any; text: string; headers: Headers }> {
  const res = await fetch(`${at}/v1/patients/${patient}/readings${query}`, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text), text, headers: res.headers };
}

interface TrailRow {
  reader_name: string;
  patient_nhs_number: string;
  outcome: string;
  rows_returned: number;
  filters: unknown;
  recorded_by: string;
  accessed_at: Date;
}

async function trail(reader: string): Promise<TrailRow[]> {
  const { rows } = await db.admin.query<TrailRow>(
    'SELECT reader_name, patient_nhs_number, outcome, rows_returned, filters, recorded_by, accessed_at FROM telemetry.reader_access WHERE reader_name = $1 ORDER BY access_id',
    [reader],
  );
  return rows;
}

describe('scoped readers and the reader access trail, against real PostgreSQL and the real API', () => {
  before(async () => {
    db = await startTelemetryTestDb();
    const deviceA = await db.registerDevice('trail-dev-a', PATIENT_A);
    const deviceB = await db.registerDevice('trail-dev-b', PATIENT_B);
    tokens['ward'] = (await registerReader(db.admin, 'ward-7', { allPatients: false, patients: [PATIENT_A] })).token;
    tokens['gp'] = (await registerReader(db.admin, 'gp-practice', { allPatients: false, patients: [PATIENT_A, PATIENT_B] })).token;
    tokens['all'] = (await registerReader(db.admin, 'clinical-portal', { allPatients: true })).token;
    // As in production: the server connects as a login holding only pms_telemetry_ingest.
    const config = db.ingestConfig({
      TELEMETRY_RATE_LIMIT_BURST: '100000',
      TELEMETRY_RATE_LIMIT_PER_MINUTE: '100000',
      TELEMETRY_READER_RATE_LIMIT_BURST: '100000',
      TELEMETRY_READER_RATE_LIMIT_PER_MINUTE: '100000',
    });
    pool = await openTelemetryPool(config);
    ({ app } = await buildServer({ config, pool, logStream: logs }));
    base = await listen(app);
    for (const [token, prefix, n] of [
      [deviceA, 'a', 3],
      [deviceB, 'b', 2],
    ] as const) {
      const res = await fetch(`${base}/v1/readings`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ readings: Array.from({ length: n }, (_, i) => heartRate(`${prefix}-${i}`, 70 + i, 600_000 - i * 1000)) }),
      });
      assert.equal(res.status, 200, await res.text());
    }
  });

  after(async () => {
    await app?.close();
    await pool?.end();
    await db?.destroy();
  });

  test('a reader scoped to one patient reads that patient: 200, and a trail row with the rows returned', async () => {
    const res = await read(PATIENT_A, tokens['ward']!, '?code=8867-4&limit=2');
    assert.equal(res.status, 200);
    assert.equal(res.json.readings.length, 2);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const all = await read(PATIENT_A, tokens['ward']!);
    assert.equal(all.json.readings.length, 3);
    const rows = await trail('ward-7');
    assert.deepEqual(
      rows.map((r) => [r.patient_nhs_number, r.outcome, r.rows_returned]),
      [
        [PATIENT_A, 'ok', 2],
        [PATIENT_A, 'ok', 3],
      ],
    );
    assert.deepEqual(rows[0]?.filters, { code: '8867-4', from: null, to: null, limit: 2, enteredInError: 'exclude', history: false });
    assert.equal(rows[0]?.recorded_by, 'telemetry_service', 'the database, not the API, names the login that wrote the row');
    assert.ok(Math.abs((rows[1]?.accessed_at.getTime() ?? 0) - Date.now()) < 60_000);
  });

  test('the same reader asking for another patient gets 403 naming the reason, is logged, and leaves a forbidden trail row', async () => {
    const before = logs.lines.length;
    const res = await read(PATIENT_B, tokens['ward']!, '?limit=5');
    assert.equal(res.status, 403);
    assert.deepEqual(Object.keys(res.json), ['error']);
    assert.equal(res.json.error.code, 'patient-not-in-scope');
    assert.doesNotMatch(res.text, new RegExp(PATIENT_B), 'the reply does not repeat the patient');
    assert.doesNotMatch(res.text, /readingId|"value"/, 'no data in the reply');
    const logged = logs.lines
      .slice(before)
      .map((l) => JSON.parse(l))
      .find((l) => l.outcome === 'forbidden');
    assert.ok(logged, logs.lines.slice(before).join('\n'));
    assert.equal(logged.reader, 'ward-7');
    assert.equal(logged.level, 40, 'logged as a warning');
    assert.doesNotMatch(logs.text(), new RegExp(`${PATIENT_A}|${PATIENT_B}`), 'logs never hold NHS numbers');
    const last = (await trail('ward-7')).at(-1);
    assert.deepEqual([last?.patient_nhs_number, last?.outcome, last?.rows_returned], [PATIENT_B, 'forbidden', 0]);
    assert.deepEqual(last?.filters, { code: null, from: null, to: null, limit: 5, enteredInError: 'exclude', history: false });
  });

  test('a reader scoped to several patients reads each of them and no other', async () => {
    assert.equal((await read(PATIENT_A, tokens['gp']!)).json.readings.length, 3);
    assert.equal((await read(PATIENT_B, tokens['gp']!)).json.readings.length, 2);
    assert.equal((await read(PATIENT_C, tokens['gp']!)).status, 403);
    assert.deepEqual(
      (await trail('gp-practice')).map((r) => [r.patient_nhs_number, r.outcome, r.rows_returned]),
      [
        [PATIENT_A, 'ok', 3],
        [PATIENT_B, 'ok', 2],
        [PATIENT_C, 'forbidden', 0],
      ],
    );
  });

  test('an all-patients reader reads any patient, and each read is still in the trail', async () => {
    assert.equal((await read(PATIENT_A, tokens['all']!)).json.readings.length, 3);
    assert.equal((await read(PATIENT_B, tokens['all']!)).json.readings.length, 2);
    const empty = await read(PATIENT_C, tokens['all']!);
    assert.equal(empty.status, 200);
    assert.deepEqual(empty.json, { readings: [] });
    assert.deepEqual(
      (await trail('clinical-portal')).map((r) => [r.patient_nhs_number, r.outcome, r.rows_returned]),
      [
        [PATIENT_A, 'ok', 3],
        [PATIENT_B, 'ok', 2],
        [PATIENT_C, 'ok', 0],
      ],
    );
  });

  test('a reader past its rate limit gets 429 with Retry-After, other readers and devices are not limited, and nothing is read', async () => {
    const config = db.ingestConfig({ TELEMETRY_READER_RATE_LIMIT_BURST: '3', TELEMETRY_READER_RATE_LIMIT_PER_MINUTE: '1' });
    const strictPool = await openTelemetryPool(config);
    const strict = await buildServer({ config, pool: strictPool, logStream: quiet });
    try {
      const at = await listen(strict.app);
      const trailBefore = (await trail('clinical-portal')).length;
      const statuses: number[] = [];
      for (let i = 0; i < 5; i += 1) statuses.push((await read(PATIENT_A, tokens['all']!, '', at)).status);
      assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
      const limited = await read(PATIENT_A, tokens['all']!, '', at);
      assert.equal(limited.status, 429);
      assert.equal(limited.json.error.code, 'rate-limited');
      assert.ok(Number(limited.headers.get('retry-after')) >= 1, 'Retry-After says how long to wait');
      assert.equal((await read(PATIENT_A, tokens['ward']!, '', at)).status, 200, 'another reader has its own bucket');
      assert.equal((await trail('clinical-portal')).length, trailBefore + 3, 'only the answered reads are in the trail');
    } finally {
      await strict.app.close();
      await strictPool.end();
    }
  });

  test('the API’s role may only append to the trail: UPDATE, DELETE, TRUNCATE, SELECT and a chosen timestamp fail with 42501', async () => {
    const service = new pg.Pool({ ...pgClientConfig(db.ingestConfig().postgres), max: 1 });
    service.on('error', () => undefined);
    const sqlstate = async (sql: string): Promise<unknown> =>
      service.query(sql).then(
        () => 'succeeded',
        (error: { code?: unknown }) => error.code,
      );
    try {
      const before = await db.admin.query('SELECT * FROM telemetry.reader_access ORDER BY access_id');
      assert.ok(before.rows.length > 0);
      assert.equal(await sqlstate("UPDATE telemetry.reader_access SET outcome = 'ok' WHERE outcome = 'forbidden'"), '42501');
      assert.equal(await sqlstate('DELETE FROM telemetry.reader_access'), '42501');
      assert.equal(await sqlstate('TRUNCATE telemetry.reader_access'), '42501');
      assert.equal(await sqlstate('SELECT count(*) FROM telemetry.reader_access'), '42501');
      assert.equal(
        await sqlstate(
          `INSERT INTO telemetry.reader_access (accessed_at, reader_id, reader_name, patient_nhs_number, outcome, rows_returned, filters)
           SELECT '2000-01-01Z', reader_id, name, '${PATIENT_A}', 'ok', 0, '{}' FROM telemetry.reader LIMIT 1`,
        ),
        '42501',
        'the API cannot backdate an entry',
      );
      assert.equal(await sqlstate('SELECT count(*) FROM telemetry.reader_patient'), 'succeeded', 'it reads scopes');
      assert.equal(await sqlstate(`DELETE FROM telemetry.reader_patient`), '42501', 'but cannot widen or drop them');
      // Append-only holds for the owner too (here the superuser, which triggers still bind).
      const owner = await db.admin.query("UPDATE telemetry.reader_access SET rows_returned = 0 WHERE outcome = 'ok'").then(
        () => 'succeeded',
        (error: { code?: unknown }) => error.code,
      );
      assert.equal(owner, '42501');
      assert.deepEqual((await db.admin.query('SELECT * FROM telemetry.reader_access ORDER BY access_id')).rows, before.rows);
    } finally {
      await service.end();
    }
  });

  test('a read whose trail row cannot be written returns no data', async () => {
    await db.admin.query('REVOKE INSERT ON telemetry.reader_access FROM pms_telemetry_ingest');
    try {
      const res = await read(PATIENT_A, tokens['all']!);
      assert.equal(res.status, 500);
      assert.doesNotMatch(res.text, /readingId/);
    } finally {
      await db.admin.query(
        'GRANT INSERT (reader_id, reader_name, patient_nhs_number, outcome, rows_returned, filters) ON telemetry.reader_access TO pms_telemetry_ingest',
      );
    }
    assert.equal((await read(PATIENT_A, tokens['all']!)).status, 200);
  });

  test('a reader registered before scopes existed is refused after the upgrade until an operator scopes it', async () => {
    // A database at schema version 2 with a reader, upgraded by migrate as in production.
    await db.cluster.psql('CREATE DATABASE telemetry_v2');
    const legacyEnv = { ...db.env, POSTGRES_DB: 'telemetry_v2' };
    const legacyAdmin = new pg.Pool({ ...pgClientConfig(db.config({ POSTGRES_DB: 'telemetry_v2' }).postgres), max: 2 });
    legacyAdmin.on('error', () => undefined);
    const legacyConfig = db.ingestConfig({ POSTGRES_DB: 'telemetry_v2' });
    let legacyPool: pg.Pool | undefined;
    let legacyApp: FastifyInstance | undefined;
    try {
      await legacyAdmin.query(`CREATE SCHEMA telemetry; CREATE TABLE telemetry.schema_migration (
        version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(), applied_by text NOT NULL DEFAULT current_user)`);
      for (const m of MIGRATIONS.filter((m) => m.version <= 2)) {
        await legacyAdmin.query(m.sql);
        await legacyAdmin.query('INSERT INTO telemetry.schema_migration (version, name, checksum) VALUES ($1, $2, $3)', [
          m.version,
          m.name,
          checksum(m),
        ]);
      }
      // What `reader register --name` inserted before this change (the token is the hash of "pmsr_legacy…").
      const legacyToken = `pmsr_legacy${'x'.repeat(40)}`;
      await legacyAdmin.query('INSERT INTO telemetry.reader (name, token_hash) VALUES ($1, $2)', ['old-dashboard', hashToken(legacyToken)]);
      const client = await legacyAdmin.connect();
      try {
        assert.deepEqual(
          (await migrate(client, { partitionsAheadMonths: 1 })).applied,
          MIGRATIONS.filter((m) => m.version > 2).map((m) => m.version),
        );
      } finally {
        client.release();
      }
      legacyPool = await openTelemetryPool(legacyConfig);
      legacyApp = (await buildServer({ config: legacyConfig, pool: legacyPool, logStream: quiet })).app;
      const at = await listen(legacyApp);
      const refused = await read(PATIENT_A, legacyToken, '', at);
      assert.equal(refused.status, 403);
      assert.equal(refused.json.error.code, 'reader-not-scoped');
      assert.match(refused.json.error.message, /pms-telemetry reader scope/);
      const list = await runCli('pms-telemetry', ['reader', 'list'], legacyEnv);
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /^old-dashboard\tactive\tUNSCOPED/m);
      const scoped = await runCli('pms-telemetry', ['reader', 'scope', 'old-dashboard', '--patient', '999 000 0018', '--json'], legacyEnv);
      assert.equal(scoped.code, 0, scoped.stderr);
      assert.deepEqual(JSON.parse(scoped.stdout), {
        ok: true,
        name: 'old-dashboard',
        scope: { allPatients: false, patients: [PATIENT_A] },
      });
      assert.equal((await read(PATIENT_A, legacyToken, '', at)).status, 200, 'the same token works once scoped');
      assert.equal((await read(PATIENT_B, legacyToken, '', at)).status, 403);
      const log = await runCli('pms-telemetry', ['access-log', '--reader', 'old-dashboard', '--json'], legacyEnv);
      assert.equal(log.code, 0, log.stderr);
      assert.deepEqual(
        JSON.parse(log.stdout).entries.map((e: { outcome: string }) => e.outcome),
        ['forbidden', 'ok', 'unscoped'],
      );
    } finally {
      await legacyApp?.close();
      await legacyPool?.end();
      await legacyAdmin.end();
    }
  });

  test('reader register needs exactly one of --patient or --all-patients and stores the scope', async () => {
    const both = await runCli('pms-telemetry', ['reader', 'register', '--name', 'x', '--patient', PATIENT_A, '--all-patients'], db.env);
    assert.equal(both.code, 64);
    assert.match(both.stderr, /not both/);
    const neither = await runCli('pms-telemetry', ['reader', 'register', '--name', 'x'], db.env);
    assert.equal(neither.code, 64);
    assert.match(neither.stderr, /--all-patients/);
    const invalid = await runCli('pms-telemetry', ['reader', 'register', '--name', 'x', '--patient', '9990000019'], db.env);
    assert.equal(invalid.code, 64);
    assert.doesNotMatch(invalid.stdout + invalid.stderr, /9990000019/, 'the rejected identifier is not echoed');
    assert.equal((await db.admin.query("SELECT count(*)::int AS n FROM telemetry.reader WHERE name = 'x'")).rows[0]?.n, 0);
    const ok = await runCli(
      'pms-telemetry',
      ['reader', 'register', '--name', 'renal-clinic', '--patient', PATIENT_A, '--patient', PATIENT_B, '--json'],
      db.env,
    );
    assert.equal(ok.code, 0, ok.stderr);
    const out = JSON.parse(ok.stdout);
    assert.deepEqual(out.scope, { allPatients: false, patients: [PATIENT_A, PATIENT_B] });
    assert.match(out.token, /^pmsr_/);
    assert.equal((await read(PATIENT_B, out.token)).status, 200);
    const again = await runCli('pms-telemetry', ['reader', 'register', '--name', 'renal-clinic', '--all-patients'], db.env);
    assert.equal(again.code, 7, 'a name is never reused');
    const help = await runCli('pms-telemetry', ['reader', 'register', '--help'], {});
    assert.match(
      help.stdout,
      /--patient <nhs-number>[\s\S]*--all-patients[\s\S]*Exactly one of --patient \(one or more\) or --all-patients/,
    );
    const human = await runCli('pms-telemetry', ['reader', 'register', '--name', 'ed-triage', '--all-patients'], db.env);
    assert.match(human.stdout, /^reader ed-triage registered for all patients; its token \(shown only now\):\npmsr_/);
  });

  test('access-log shows the trail newest first, filters by reader, patient, outcome and time, and prints JSON', async () => {
    const human = await runCli('pms-telemetry', ['access-log', '--reader', 'ward-7'], db.env);
    assert.equal(human.code, 0, human.stderr);
    const lines = human.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^TIME\s+READER\s+PATIENT\s+OUTCOME\s+ROWS$/);
    const expected = (await trail('ward-7')).reverse();
    assert.equal(lines.length - 1, expected.length);
    for (const [i, row] of expected.entries()) {
      const cells = (lines[i + 1] ?? '').split(/\s{2,}/);
      assert.deepEqual(cells, [row.accessed_at.toISOString(), 'ward-7', row.patient_nhs_number, row.outcome, String(row.rows_returned)]);
    }
    const json = await runCli('pms-telemetry', ['access-log', '--patient', '999 000 0026', '--outcome', 'forbidden', '--json'], db.env);
    assert.equal(json.code, 0, json.stderr);
    const { entries, truncated } = JSON.parse(json.stdout);
    assert.equal(truncated, false);
    assert.deepEqual(
      entries.map((e: { reader: string; patient: string; outcome: string; rowsReturned: number }) => [
        e.reader,
        e.patient,
        e.outcome,
        e.rowsReturned,
      ]),
      [['ward-7', PATIENT_B, 'forbidden', 0]],
    );
    assert.deepEqual(Object.keys(entries[0]).sort(), [
      'accessId',
      'accessedAt',
      'filters',
      'outcome',
      'patient',
      'reader',
      'recordedBy',
      'rowsReturned',
    ]);
    const future = await runCli(
      'pms-telemetry',
      ['access-log', '--since', new Date(Date.now() + 3600_000).toISOString(), '--json'],
      db.env,
    );
    assert.deepEqual(JSON.parse(future.stdout).entries, []);
    const past = await runCli('pms-telemetry', ['access-log', '--since', '2000-01-01', '--limit', '2', '--json'], db.env);
    const page = JSON.parse(past.stdout);
    assert.equal(page.entries.length, 2);
    assert.equal(page.truncated, true);
    assert.ok(page.entries[0].accessedAt >= page.entries[1].accessedAt, 'newest first');
    const bad = await runCli('pms-telemetry', ['access-log', '--since', 'yesterday', '--outcome', 'maybe'], db.env);
    assert.equal(bad.code, 64);
    assert.match(bad.stderr, /--since/);
    assert.match(bad.stderr, /--outcome/);
    const asApi = await runCli('pms-telemetry', ['access-log'], db.ingestEnv);
    assert.equal(asApi.code, 2, 'the API’s login cannot read the trail');
    assert.match(asApi.stderr, /schema owner/);
    const help = await runCli('pms-telemetry', ['access-log', '--help'], {});
    assert.equal(help.code, 0);
    for (const flag of ['--reader', '--patient', '--outcome', '--since', '--until', '--limit', '--json'])
      assert.match(help.stdout, new RegExp(flag));
  });
});
