import assert from 'node:assert/strict';
import { MIGRATIONS } from '../schema/migrations.js';
import { type ChildProcess, spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { loadTelemetryConfig } from '../../config/telemetry-config.js';
import { pgClientConfig } from '../../postgres/connection-options.js';
import { type ThrowawayCluster, startThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { freePort } from '../../postgres/free-port.js';
import { hashToken } from '../devices/token.js';
import { PATIENT_A, heartRate } from '../testing/telemetry-harness.js';

const BIN = fileURLToPath(new URL('../../../bin/pms-telemetry.js', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env['PATH'] ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Resolves when the child's stdout has printed a line matching `pattern`. */
function waitForLine(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString();
      const line = buffered.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) {
        child.stdout?.off('data', onData);
        resolve(line);
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`process exited (${code}) before printing ${pattern}`)));
  });
}

let cluster: ThrowawayCluster;
let env: Record<string, string>;
let admin: pg.Pool;

describe('pms-telemetry CLI against real PostgreSQL', () => {
  before(async () => {
    cluster = await startThrowawayCluster();
    await cluster.psql('CREATE DATABASE patient_telemetry');
    env = { ...cluster.postgresEnv, POSTGRES_DB: 'patient_telemetry' };
    admin = new pg.Pool({ ...pgClientConfig(loadTelemetryConfig(env).postgres), max: 2 });
    admin.on('error', () => undefined);
  });

  after(async () => {
    await admin?.end();
    await cluster?.destroy();
  });

  test('migrate from two processes at once applies each migration exactly once, and again is a no-op', async () => {
    const [a, b] = await Promise.all([cli(['migrate', '--json'], env), cli(['migrate', '--json'], env)]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const results = [JSON.parse(a.stdout), JSON.parse(b.stdout)];
    assert.deepEqual(results.map((r) => r.applied.length).sort(), [0, MIGRATIONS.length], 'one process applied, the other found it done');
    const third = await cli(['migrate', '--json'], env);
    assert.equal(third.code, 0);
    assert.deepEqual(JSON.parse(third.stdout).applied, []);
    const { rows } = await admin.query('SELECT version FROM telemetry.schema_migration ORDER BY version');
    assert.deepEqual(
      rows,
      MIGRATIONS.map((m) => ({ version: m.version })),
    );
  });

  test('migrate creates the ingest, reporting and backup roles with only their privileges', async () => {
    const q = async (sql: string) => (await admin.query<{ v: boolean }>(`SELECT (${sql}) AS v`)).rows[0]?.v;
    assert.equal(await q("pg_has_role('pms_backup', 'pg_read_all_data', 'MEMBER')"), true);
    assert.equal(await q("has_table_privilege('pms_telemetry_ingest', 'telemetry.reading', 'INSERT')"), true);
    assert.equal(await q("has_table_privilege('pms_telemetry_ingest', 'telemetry.reading', 'DELETE')"), false);
    assert.equal(await q("has_table_privilege('pms_telemetry_ingest', 'telemetry.device', 'UPDATE')"), false);
    assert.equal(await q("has_table_privilege('pms_telemetry_ingest', 'telemetry.quarantined_reading', 'SELECT')"), false);
    assert.equal(await q("has_table_privilege('pms_telemetry_reporting', 'telemetry.reading', 'SELECT')"), true);
    assert.equal(await q("has_table_privilege('pms_telemetry_reporting', 'telemetry.reading', 'INSERT')"), false);
    assert.equal(await q("has_column_privilege('pms_telemetry_reporting', 'telemetry.device', 'token_hash', 'SELECT')"), false);
    assert.equal(
      await q("has_function_privilege('pms_telemetry_reporting', 'telemetry.ensure_reading_partition(date)', 'EXECUTE')"),
      false,
    );
  });

  test('device register prints the token once as JSON and stores only its hash; bad input exits with usage or conflict codes', async () => {
    const run = await cli(['device', 'register', '--device-id', 'watch-1', '--patient-id', '999 000 0018', '--json'], env);
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout) as { deviceId: string; patientId: string; token: string };
    assert.deepEqual(Object.keys(out).sort(), ['deviceId', 'patientId', 'token']);
    assert.equal(out.patientId, PATIENT_A);
    const { rows } = await admin.query<{ token_hash: Buffer }>("SELECT token_hash FROM telemetry.device WHERE device_id = 'watch-1'");
    assert.deepEqual(rows[0]?.token_hash, hashToken(out.token));
    const dump = JSON.stringify((await admin.query('SELECT * FROM telemetry.device')).rows);
    assert.ok(!dump.includes(out.token), 'the token itself is not stored');
    const invalid = await cli(['device', 'register', '--device-id', 'watch-2', '--patient-id', '9990000019', '--json'], env);
    assert.equal(invalid.code, 64);
    assert.doesNotMatch(invalid.stdout + invalid.stderr, /9990000019/, 'the rejected identifier is not echoed');
    assert.equal((await cli(['device', 'register', '--device-id', 'watch-1', '--patient-id', PATIENT_A], env)).code, 7);
    assert.equal((await cli(['device', 'revoke', 'nope'], env)).code, 3);
  });

  test('serve drains an in-flight request on SIGTERM, stores it, then exits 0', async () => {
    const token = JSON.parse(
      (await cli(['device', 'register', '--device-id', 'watch-drain', '--patient-id', PATIENT_A, '--json'], env)).stdout,
    ).token as string;
    const port = await freePort();
    const child = spawn(process.execPath, [BIN, 'serve'], {
      env: {
        PATH: process.env['PATH'] ?? '',
        ...env,
        TELEMETRY_PORT: String(port),
        TELEMETRY_METRICS_PORT: String(await freePort()),
        TELEMETRY_HOST: '127.0.0.1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitForLine(child, /pms-telemetry listening/);
      const body = JSON.stringify({ readings: [heartRate('drain-1')] });
      let reply = '';
      const responded = new Promise<number>((resolve, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port,
            path: '/v1/readings',
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': String(body.length) },
          },
          (res) => {
            res.on('data', (c: Buffer) => (reply += c.toString()));
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        // Half the body now: the request is in flight when SIGTERM arrives.
        req.write(body.slice(0, 10));
        void waitForLine(child, /shutting down/).then(() => req.end(body.slice(10)));
      });
      await waitForLine(child, /incoming request/);
      child.kill('SIGTERM');
      assert.equal(await responded, 200);
      assert.deepEqual(JSON.parse(reply), { accepted: 1, duplicates: 0, rejected: [] });
      assert.equal(await exited, 0);
      const { rows } = await admin.query("SELECT count(*)::int AS n FROM telemetry.reading WHERE reading_id = 'drain-1'");
      assert.deepEqual(rows, [{ n: 1 }]);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    }
  });

  test('retention never drops by default, dry-run changes nothing, and each drop is logged and recorded', async () => {
    // An old partition with data, created directly (the ingest path refuses readings this old).
    await admin.query(`CREATE TABLE telemetry.reading_p2020_01 PARTITION OF telemetry.reading FOR VALUES FROM ('2020-01-01 00:00:00+00') TO ('2020-02-01 00:00:00+00');
      INSERT INTO telemetry.reading (patient_nhs_number, device_id, reading_id, code, value, unit, measured_at, measured_at_offset_minutes)
      VALUES ('${PATIENT_A}', 'watch-1', 'old-1', '8867-4', 70, '/min', '2020-01-15T10:00:00Z', 0), ('${PATIENT_A}', 'watch-1', 'old-2', '8867-4', 71, '/min', '2020-01-16T10:00:00Z', 0)`);
    const keep = await cli(['retention', '--json'], env);
    assert.equal(keep.code, 0, keep.stderr);
    assert.equal(JSON.parse(keep.stdout).dropped.length, 0);
    const dry = await cli(['retention', '--dry-run', '--json'], { ...env, TELEMETRY_RETENTION_DAYS: '400' });
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(
      JSON.parse(dry.stdout).dropped.map((d: { partition: string; rows: number }) => [d.partition, d.rows]),
      [['reading_p2020_01', 2]],
    );
    assert.match(dry.stderr, /"event":"partition-would-drop"/);
    assert.equal((await admin.query("SELECT to_regclass('telemetry.reading_p2020_01') IS NOT NULL AS present")).rows[0]?.present, true);
    const real = await cli(['retention', '--json'], { ...env, TELEMETRY_RETENTION_DAYS: '400' });
    assert.equal(real.code, 0, real.stderr);
    assert.deepEqual(
      JSON.parse(real.stdout).dropped.map((d: { partition: string }) => d.partition),
      ['reading_p2020_01'],
    );
    const logLine = real.stderr.split('\n').find((l) => l.includes('"event":"partition-dropped"'));
    assert.ok(logLine, real.stderr);
    assert.equal(JSON.parse(logLine).partition, 'reading_p2020_01');
    assert.equal((await admin.query("SELECT to_regclass('telemetry.reading_p2020_01') IS NOT NULL AS present")).rows[0]?.present, false);
    const { rows } = await admin.query('SELECT partition_name, row_count::int, retention_days FROM telemetry.retention_log');
    assert.deepEqual(rows, [{ partition_name: 'reading_p2020_01', row_count: 2, retention_days: 400 }]);
    // Current partitions survive: only whole partitions entirely older than the cutoff go.
    assert.equal((await admin.query("SELECT count(*)::int AS n FROM telemetry.reading WHERE reading_id = 'drain-1'")).rows[0]?.n, 1);
    const short = await cli(['retention'], { ...env, TELEMETRY_RETENTION_DAYS: '7' });
    assert.equal(short.code, 2, 'a retention shorter than the 30-day acceptance window is refused');
  });
});
