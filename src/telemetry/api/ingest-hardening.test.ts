import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { openTelemetryPool } from '../db/telemetry-pool.js';
import { MAX_READING_BYTES } from '../ingest/reading-limits.js';
import { LogCapture, PATIENT_A, type TelemetryTestDb, heartRate, startTelemetryTestDb } from '../testing/telemetry-harness.js';
import { AUTH_FAILURE_BURST } from './auth-throttle.js';
import { buildServer } from './build-server.js';

let db: TelemetryTestDb;
let pool: pg.Pool;
let app: FastifyInstance;
let port: number;
const tokens: Record<string, string> = {};

interface Reply {
  status: number;
  json: any;
  headers: Record<string, string | string[] | undefined>;
}

/** POSTs exactly these bytes with exactly these headers (fetch would add a Content-Type). */
function rawPost(path: string, headers: Record<string, string>, body: Buffer | string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const req = httpRequest(
      { host: '127.0.0.1', port, path, method: 'POST', headers: { ...headers, 'content-length': String(payload.length) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const post = (path: string, device: string, body: Buffer | string, contentType = 'application/json') =>
  rawPost(path, { authorization: `Bearer ${tokens[device]}`, 'content-type': contentType }, body);

const batch = (...readings: (Buffer | string)[]): Buffer =>
  Buffer.concat([
    Buffer.from('{"readings":['),
    ...readings.flatMap((r, i) => [...(i > 0 ? [Buffer.from(',')] : []), Buffer.from(r)]),
    Buffer.from(']}'),
  ]);

const good = (id: string): string => JSON.stringify(heartRate(id));
/** A valid heart-rate reading with `extra` spliced in as its last member(s), as raw JSON text. */
const withExtra = (id: string, extra: string): string => `${good(id).slice(0, -1)},${extra}}`;

async function quarantined(
  device: string,
): Promise<{ reason: string; detail: string; reading_id: string | null; payload: unknown; raw_payload: Buffer | null; source: string }[]> {
  const { rows } = await db.admin.query(
    'SELECT reason, detail, reading_id, payload, raw_payload, source FROM telemetry.quarantined_reading WHERE device_id = $1 ORDER BY quarantine_id',
    [device],
  );
  return rows;
}

async function storedIds(device: string): Promise<string[]> {
  const { rows } = await db.admin.query<{ reading_id: string }>(
    'SELECT reading_id FROM telemetry.reading WHERE device_id = $1 ORDER BY reading_id',
    [device],
  );
  return rows.map((r) => r.reading_id);
}

/** How often PostgreSQL has run the device-token lookup (pg_stat_statements counts synchronously). */
async function tokenLookups(): Promise<number> {
  const { rows } = await db.admin.query<{ n: string }>(
    "SELECT coalesce(sum(calls), 0) AS n FROM pg_stat_statements WHERE query LIKE '%FROM telemetry.device WHERE token_hash%'",
  );
  return Number(rows[0]?.n);
}

describe('ingest hardening: poison readings, content types, failed authentication', () => {
  before(async () => {
    db = await startTelemetryTestDb({ settings: { shared_preload_libraries: 'pg_stat_statements' } });
    await db.admin.query('CREATE EXTENSION pg_stat_statements');
    for (const device of ['poison', 'fhir', 'envelope', 'types', 'valid-elsewhere', 'proxied']) {
      tokens[device] = await db.registerDevice(device, PATIENT_A);
    }
    const config = db.ingestConfig({ TELEMETRY_RATE_LIMIT_BURST: '100000', TELEMETRY_RATE_LIMIT_PER_MINUTE: '100000' });
    pool = await openTelemetryPool(config);
    ({ app } = await buildServer({ config, pool, logStream: new LogCapture() }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    port = typeof address === 'object' && address ? address.port : 0;
  });

  after(async () => {
    await app?.close();
    await pool?.end();
    await db?.destroy();
  });

  test('each poison reading is rejected with its reason and quarantined as sent; the rest of its batch is stored', async () => {
    const deep = withExtra('deep', `"extra":${'['.repeat(200_000)}${']'.repeat(200_000)}`);
    const poison: [string, Buffer | string][] = [
      ['invalid-character', withExtra('nul-value', '"note":"a\\u0000b"')],
      ['invalid-character', withExtra('nul-key', '"x\\u0000y":1')],
      ['invalid-character', good('nul-unit').replace('"/min"', '"/min\\u0000"')],
      ['invalid-character', withExtra('surrogate', '"note":"\\ud800"')],
      ['reading-too-deep', deep],
      ['reading-too-large', withExtra('large', `"note":"${'x'.repeat(MAX_READING_BYTES)}"`)],
      [
        'invalid-utf8',
        Buffer.concat([Buffer.from(withExtra('utf8', '"note":"').slice(0, -1)), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]),
      ],
      // A raw NUL byte (not the \u0000 escape) is not allowed in a JSON string at all.
      [
        'malformed-reading',
        Buffer.concat([Buffer.from(withExtra('raw-nul', '"note":"a').slice(0, -1)), Buffer.from([0]), Buffer.from('b"}')]),
      ],
      ['malformed-reading', '{"readingId":"no-comma" "code":"8867-4"}'],
    ];
    const body = batch(good('p-ok-1'), ...poison.flatMap(([, r], i) => [r, good(`p-ok-${i + 2}`)]));
    const res = await post('/v1/readings', 'poison', body);
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.equal(res.json.accepted, poison.length + 1);
    assert.deepEqual(
      res.json.rejected.map((r: { index: number; reason: string }) => [r.index, r.reason]),
      poison.map(([reason], i) => [1 + 2 * i, reason]),
    );
    assert.ok(res.json.rejected.every((r: { detail: string }) => typeof r.detail === 'string' && r.detail.length > 0));
    assert.deepEqual(await storedIds('poison'), Array.from({ length: poison.length + 1 }, (_, i) => `p-ok-${i + 1}`).sort());
    const rows = await quarantined('poison');
    assert.deepEqual(
      rows.map((r) => r.reason),
      poison.map(([reason]) => reason),
    );
    rows.forEach((row, i) => {
      const sent = poison[i]?.[1];
      assert.ok(sent !== undefined);
      assert.equal(row.payload, null);
      assert.ok(row.raw_payload && Buffer.from(sent).equals(row.raw_payload), `quarantine row ${i} holds the bytes exactly as sent`);
      assert.equal(row.source, 'v1');
    });
  });

  test('a reading that merely looks like a pre-rejected one is validated like any other', async () => {
    const spoof = JSON.stringify({ preRejected: { readingId: 'x', reason: 'made-up', detail: 'd' }, payload: 1 });
    const res = await post('/v1/readings', 'poison', batch(spoof, good('spoof-ok')));
    assert.equal(res.status, 200);
    assert.deepEqual(
      res.json.rejected.map((r: { reason: string }) => r.reason),
      ['invalid-reading-id'],
    );
    assert.equal(res.json.accepted, 1);
  });

  test('FHIR: a batch keeps its good entries beside deep, NUL and non-UTF-8 ones; a transaction stores none', async () => {
    const entry = (id: string, extra = '') =>
      `{"resource":{"resourceType":"Observation","status":"final","identifier":[{"value":"${id}"}],` +
      `"effectiveDateTime":"${new Date(Date.now() - 60_000).toISOString()}",` +
      `"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"valueQuantity":{"value":70,"code":"/min"}${extra}}}`;
    const bundle = (type: string, entries: (string | Buffer)[]) =>
      Buffer.concat([
        Buffer.from(`{"resourceType":"Bundle","type":"${type}","entry":[`),
        ...entries.flatMap((e, i) => [...(i > 0 ? [Buffer.from(',')] : []), Buffer.from(e)]),
        Buffer.from(']}'),
      ]);
    const deep = entry('f-deep', `,"extension":${'['.repeat(200_000)}${']'.repeat(200_000)}`);
    const nul = entry('f-nul', ',"text":{"div":"\\u0000"}');
    const notUtf8 = Buffer.concat([
      Buffer.from(entry('f-utf8', ',"text":{"div":"').slice(0, -2)),
      Buffer.from([0xff]),
      Buffer.from('"}}}'),
    ]);
    const res = await post(
      '/fhir/Bundle',
      'fhir',
      bundle('batch', [entry('f-ok-1'), deep, nul, notUtf8, entry('f-ok-2')]),
      'application/fhir+json',
    );
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.deepEqual(
      res.json.entry.map((e: { response: { status: string } }) => e.response.status),
      ['201 Created', '422 Unprocessable Entity', '422 Unprocessable Entity', '422 Unprocessable Entity', '201 Created'],
    );
    assert.match(res.json.entry[1].response.outcome.issue[0].diagnostics, /^reading-too-deep: /);
    assert.match(res.json.entry[2].response.outcome.issue[0].diagnostics, /^invalid-character: /);
    assert.match(res.json.entry[3].response.outcome.issue[0].diagnostics, /^invalid-utf8: /);
    assert.deepEqual(await storedIds('fhir'), ['f-ok-1', 'f-ok-2']);
    const rows = await quarantined('fhir');
    assert.deepEqual(
      rows.map((r) => [r.reason, r.source]),
      [
        ['reading-too-deep', 'fhir'],
        ['invalid-character', 'fhir'],
        ['invalid-utf8', 'fhir'],
      ],
    );
    assert.ok(rows[2]?.raw_payload?.equals(notUtf8));

    const tx = await post('/fhir/Bundle', 'fhir', bundle('transaction', [entry('t-ok'), deep]), 'application/fhir+json');
    assert.equal(tx.status, 400);
    assert.equal(tx.json.resourceType, 'OperationOutcome');
    assert.deepEqual(tx.json.issue[0].expression, ['Bundle.entry[1]']);
    assert.deepEqual(await storedIds('fhir'), ['f-ok-1', 'f-ok-2'], 'nothing of the transaction is stored');
    assert.equal((await quarantined('fhir')).length, 4, 'its deep entry is quarantined');
  });

  test('a body that cannot be split into readings is 400 and stores nothing, whatever is wrong with it', async () => {
    const deepEnvelope = `{"readings":[${good('e-1')}],"x":${'['.repeat(200_000)}${']'.repeat(200_000)}}`;
    const cases: [string, Buffer | string, string][] = [
      ['deep outside the readings', deepEnvelope, 'invalid-body'],
      [
        'invalid UTF-8 outside the readings',
        Buffer.concat([Buffer.from(`{"readings":[${good('e-2')}],"`), Buffer.from([0xff]), Buffer.from('":1}')]),
        'malformed-json',
      ],
      ['a trailing comma', `{"readings":[${good('e-3')},]}`, 'malformed-json'],
      ['an unterminated string', `{"readings":[${good('e-4')}],"x":"`, 'malformed-json'],
      ['unbalanced brackets', `{"readings":[${good('e-5')}]`, 'malformed-json'],
      ['a second readings array', `{"readings":[${good('e-6')}],"readings":[${good('e-7')}]}`, 'invalid-body'],
      ['no body', '', 'malformed-json'],
      ['not JSON', 'readings=1', 'malformed-json'],
      ['an unknown top-level field', `{"readings":[${good('e-8')}],"x":1}`, 'invalid-body'],
      ['readings that are not an array', '{"readings":{"a":1}}', 'invalid-body'],
    ];
    for (const [what, body, code] of cases) {
      const res = await post('/v1/readings', 'envelope', body);
      assert.equal(res.status, 400, what);
      assert.equal(res.json.error.code, code, what);
    }
    assert.deepEqual(await storedIds('envelope'), []);
    assert.deepEqual(await quarantined('envelope'), []);
    // The key may be spelled with escapes: it is still the readings array.
    const escaped = await post('/v1/readings', 'envelope', `{"read\\u0069ngs":[${good('e-escaped')}]}`);
    assert.equal(escaped.status, 200);
    assert.deepEqual(await storedIds('envelope'), ['e-escaped']);
  });

  test('415 for a missing, non-JSON or non-UTF-8 Content-Type on both ingest routes; both JSON types are accepted', async () => {
    const v1 = batch(good('ct-1'));
    const auth = { authorization: `Bearer ${tokens['types']}` };
    for (const path of ['/v1/readings', '/fhir/Bundle']) {
      for (const type of [
        undefined,
        'text/plain',
        'application/xml',
        'application/fhir+xml',
        'application/x-www-form-urlencoded',
        'application/json; charset=utf-16',
        'application/json; charset=iso-8859-1',
      ]) {
        const res = await rawPost(path, type === undefined ? auth : { ...auth, 'content-type': type }, v1);
        assert.equal(res.status, 415, `${path} ${type}`);
        assert.equal(res.json.error.code, 'unsupported-media-type', `${path} ${type}`);
      }
    }
    assert.deepEqual(await storedIds('types'), []);
    assert.equal((await post('/v1/readings', 'types', v1, 'application/json; charset=UTF-8')).status, 200);
    assert.equal((await post('/v1/readings', 'types', batch(good('ct-2')), 'application/fhir+json')).status, 200);
    const fhir = JSON.stringify({
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        {
          resource: {
            resourceType: 'Observation',
            status: 'final',
            identifier: [{ value: 'ct-3' }],
            effectiveDateTime: new Date(Date.now() - 60_000).toISOString(),
            code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
            valueQuantity: { value: 70, code: '/min' },
          },
        },
      ],
    });
    assert.equal((await post('/fhir/Bundle', 'types', fhir, 'application/json')).status, 200);
    assert.deepEqual(await storedIds('types'), ['ct-1', 'ct-2', 'ct-3']);
    // Authentication comes first: without a token the type is not even looked at.
    assert.equal((await rawPost('/v1/readings', { 'content-type': 'text/plain' }, v1)).status, 401);
  });

  test('300 bad-token requests from one address: 429s after the burst, no database lookup per attempt; other addresses unaffected', async () => {
    const throttledPool = await openTelemetryPool(db.ingestConfig());
    // A stopped clock: the failure budget does not refill while the test runs, however slow the machine.
    const stopped = Date.now();
    const server = await buildServer({ config: db.ingestConfig(), pool: throttledPool, logStream: new LogCapture(), now: () => stopped });
    try {
      const send = (token: string, remoteAddress: string, id: string) =>
        server.app.inject({
          method: 'POST',
          url: '/v1/readings',
          remoteAddress,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          payload: batch(good(id)),
        });
      const before = await tokenLookups();
      const statuses: number[] = [];
      let retryAfter: string | undefined;
      for (let i = 0; i < 300; i += 1) {
        const res = await send(`pmsd_guess${i}`, '203.0.113.7', `g-${i}`);
        statuses.push(res.statusCode);
        if (res.statusCode === 429) retryAfter = String(res.headers['retry-after']);
      }
      const lookups = (await tokenLookups()) - before;
      assert.equal(statuses.filter((s) => s === 401).length, AUTH_FAILURE_BURST, 'the first failures are answered 401');
      assert.equal(statuses.filter((s) => s === 429).length, 300 - AUTH_FAILURE_BURST, 'then 429');
      assert.ok(Number(retryAfter) >= 1, 'with Retry-After');
      assert.equal(lookups, AUTH_FAILURE_BURST, 'only the attempts answered 401 reached the database');

      // A valid device from another address is not affected; from the throttled one it waits too.
      assert.equal((await send(tokens['valid-elsewhere'] ?? '', '198.51.100.9', 'v-elsewhere')).statusCode, 200);
      assert.equal((await send(tokens['valid-elsewhere'] ?? '', '203.0.113.7', 'v-throttled')).statusCode, 429);

      // Readers' failures are throttled the same way, without a lookup of the reader table either.
      const readerLookups = async () =>
        Number(
          (
            await db.admin.query<{ n: string }>(
              "SELECT coalesce(sum(calls), 0) AS n FROM pg_stat_statements WHERE query LIKE '%FROM telemetry.reader WHERE token_hash%'",
            )
          ).rows[0]?.n,
        );
      const readersBefore = await readerLookups();
      const readerStatuses: number[] = [];
      for (let i = 0; i < 50; i += 1) {
        const res = await server.app.inject({
          method: 'GET',
          url: `/v1/patients/${PATIENT_A}/readings`,
          remoteAddress: '203.0.113.8',
          headers: { authorization: `Bearer pmsr_guess${i}` },
        });
        readerStatuses.push(res.statusCode);
      }
      assert.deepEqual(
        [readerStatuses.filter((s) => s === 401).length, readerStatuses.filter((s) => s === 429).length],
        [AUTH_FAILURE_BURST, 50 - AUTH_FAILURE_BURST],
      );
      assert.equal((await readerLookups()) - readersBefore, AUTH_FAILURE_BURST, 'one reader lookup per 401, none per 429');

      // The same unknown token from many addresses is looked up once (negative cache).
      const cachedBefore = await tokenLookups();
      for (let i = 0; i < 50; i += 1) assert.equal((await send('pmsd_sameguess', `192.0.2.${i + 1}`, `s-${i}`)).statusCode, 401);
      assert.equal((await tokenLookups()) - cachedBefore, 1);
    } finally {
      await server.app.close();
      await throttledPool.end();
    }
    assert.deepEqual(await storedIds('valid-elsewhere'), ['v-elsewhere']);
  });

  test('behind a trusted proxy the throttle keys on X-Forwarded-For; from anyone else the header is ignored', async () => {
    const proxiedPool = await openTelemetryPool(db.ingestConfig());
    const server = await buildServer({
      config: db.ingestConfig({ TELEMETRY_TRUSTED_PROXIES: '10.1.0.0/16' }),
      pool: proxiedPool,
      logStream: new LogCapture(),
      now: (
        (stopped) => () =>
          stopped
      )(Date.now()),
    });
    try {
      const send = (token: string, remoteAddress: string, forwardedFor: string) =>
        server.app.inject({
          method: 'POST',
          url: '/v1/readings',
          remoteAddress,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-forwarded-for': forwardedFor },
          payload: batch(good(`x-${Math.random()}`)),
        });
      for (let i = 0; i < AUTH_FAILURE_BURST; i += 1)
        assert.equal((await send(`pmsd_bad${i}`, '10.1.2.3', '203.0.113.50')).statusCode, 401);
      assert.equal((await send('pmsd_bad-more', '10.1.2.3', '203.0.113.50')).statusCode, 429, 'the forwarded client is throttled');
      assert.equal(
        (await send(tokens['proxied'] ?? '', '10.1.2.3', '203.0.113.51')).statusCode,
        200,
        'another client via the same proxy is not',
      );
      // An untrusted peer cannot pick its address by sending the header.
      for (let i = 0; i < AUTH_FAILURE_BURST; i += 1)
        assert.equal((await send(`pmsd_direct${i}`, '198.51.100.20', `192.0.2.${i}`)).statusCode, 401);
      assert.equal((await send('pmsd_direct-more', '198.51.100.20', '192.0.2.200')).statusCode, 429);
    } finally {
      await server.app.close();
      await proxiedPool.end();
    }
  });
});
