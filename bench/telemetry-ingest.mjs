#!/usr/bin/env node
// Ingest benchmark: 16 concurrent devices POSTing batches of 200 distinct readings to a real
// `pms-telemetry serve` (child process) on a throwaway PostgreSQL 15, against the floor of COPYing
// the same number of rows into the same table with psql, measured in the same run.
// Usage: npm run build && node bench/telemetry-ingest.mjs [--batches-per-device 40]
// Writes bench/out/telemetry-ingest.json and prints a summary. Goal: HTTP rate >= 40 % of COPY.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadTelemetryConfig } from '../dist/config/telemetry-config.js';
import { findPgProgram } from '../dist/postgres/binaries.js';
import { pgClientConfig } from '../dist/postgres/connection-options.js';
import { freePort } from '../dist/postgres/free-port.js';
import { startThrowawayCluster } from '../dist/postgres/throwaway-cluster.js';
import { runTool } from '../dist/process/tool-process.js';
import { registerDevice } from '../dist/telemetry/devices/device-registry.js';
import { migrate } from '../dist/telemetry/schema/migrate.js';

const { values } = parseArgs({
  options: {
    'batches-per-device': { type: 'string', default: '40' },
    devices: { type: 'string', default: '16' },
    'batch-size': { type: 'string', default: '200' },
  },
});
const DEVICES = Number(values.devices);
const BATCHES = Number(values['batches-per-device']);
const BATCH = Number(values['batch-size']);
const PATIENT = '9990000018';
const BIN = fileURLToPath(new URL('../bin/pms-telemetry.js', import.meta.url));

const cluster = await startThrowawayCluster({ settings: { shared_buffers: '256MB', max_wal_size: '2GB' } });
let server;
try {
  await cluster.psql('CREATE DATABASE patient_telemetry');
  const env = { ...cluster.postgresEnv, POSTGRES_DB: 'patient_telemetry' };
  const config = loadTelemetryConfig(env);
  const admin = new pg.Pool({ ...pgClientConfig(config.postgres), max: 2 });
  const client = await admin.connect();
  await migrate(client, { partitionsAheadMonths: 1 });
  client.release();
  await admin.query('CREATE ROLE telemetry_service LOGIN IN ROLE pms_telemetry_ingest');
  const tokens = [];
  for (let d = 0; d < DEVICES; d += 1) tokens.push((await registerDevice(admin, `bench-${d}`, PATIENT)).token);

  const port = await freePort();
  server = spawn(process.execPath, [BIN, 'serve'], {
    env: {
      PATH: process.env.PATH,
      ...env,
      POSTGRES_USER: 'telemetry_service',
      TELEMETRY_HOST: '127.0.0.1',
      TELEMETRY_PORT: String(port),
      TELEMETRY_METRICS_PORT: String(await freePort()),
      TELEMETRY_LOG_LEVEL: 'warn',
      TELEMETRY_POOL_MAX: String(DEVICES),
      TELEMETRY_RATE_LIMIT_PER_MINUTE: '1000000',
      TELEMETRY_RATE_LIMIT_BURST: '1000000',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const agent = new Agent({ keepAlive: true, maxSockets: DEVICES });
  const post = (token, body) =>
    new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/readings',
          method: 'POST',
          agent,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode, text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  for (;;) {
    const ok = await post(tokens[0], '{}').catch(() => undefined);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }

  // Bodies are built before the clock starts: the client's JSON work is not the server's cost.
  const base = Date.now() - 3_600_000;
  const reading = (d, b, i) => ({
    readingId: `r-${b}-${i}`,
    code: '8867-4',
    value: 60 + (i % 40),
    unit: '/min',
    measuredAt: new Date(base + b * BATCH + i).toISOString(),
  });
  const bodies = (warm) =>
    tokens.map((_, d) =>
      Array.from({ length: warm ? 3 : BATCHES }, (_, b) =>
        JSON.stringify({
          readings: Array.from({ length: BATCH }, (_, i) => ({ ...reading(d, b, i), readingId: `${warm ? 'w' : 'r'}-${b}-${i}` })),
        }),
      ),
    );
  const run = async (all) => {
    const latencies = [];
    let accepted = 0;
    const started = process.hrtime.bigint();
    await Promise.all(
      all.map(async (batches, d) => {
        for (const body of batches) {
          const t0 = process.hrtime.bigint();
          const res = await post(tokens[d], body);
          latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
          if (res.status !== 200) throw new Error(`status ${res.status}: ${res.text}`);
          accepted += JSON.parse(res.text).accepted;
        }
      }),
    );
    return { seconds: Number(process.hrtime.bigint() - started) / 1e9, latencies: latencies.sort((a, b) => a - b), accepted };
  };
  await run(bodies(true)); // warm-up: JIT, pool connections, partition cache
  const http = await run(bodies(false));
  const total = DEVICES * BATCHES * BATCH;
  if (http.accepted !== total) throw new Error(`accepted ${http.accepted} of ${total}`);
  const pct = (p) => http.latencies[Math.min(http.latencies.length - 1, Math.floor((p / 100) * http.latencies.length))];

  // The floor: the same number of rows, same table and indexes, one COPY through psql.
  const lines = [];
  for (let d = 0; d < DEVICES; d += 1) {
    for (let b = 0; b < BATCHES; b += 1) {
      for (let i = 0; i < BATCH; i += 1)
        lines.push(`${PATIENT},copy-${d},r-${b}-${i},8867-4,${60 + (i % 40)},/min,${new Date(base + b * BATCH + i).toISOString()},0`);
    }
  }
  const csv = `${lines.join('\n')}\n`;
  const psql = findPgProgram('psql');
  const copySql =
    '\\copy telemetry.reading (patient_nhs_number, device_id, reading_id, code, value, unit, measured_at, measured_at_offset_minutes) FROM STDIN WITH (FORMAT csv)';
  const t0 = process.hrtime.bigint();
  await runTool(psql, ['-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d', 'patient_telemetry', '-c', copySql], {
    env: cluster.libpqEnv,
    input: csv,
  });
  const copySeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const { rows } = await admin.query("SELECT count(*)::int AS n FROM telemetry.reading WHERE device_id LIKE 'copy-%'");
  if (rows[0].n !== total) throw new Error(`COPY stored ${rows[0].n} of ${total}`);
  await admin.end();

  const result = {
    devices: DEVICES,
    batchSize: BATCH,
    batchesPerDevice: BATCHES,
    readings: total,
    http: {
      seconds: +http.seconds.toFixed(3),
      readingsPerSecond: Math.round(total / http.seconds),
      p50BatchMs: +pct(50).toFixed(1),
      p99BatchMs: +pct(99).toFixed(1),
    },
    copy: { seconds: +copySeconds.toFixed(3), readingsPerSecond: Math.round(total / copySeconds) },
    ratioToCopy: +(copySeconds / http.seconds).toFixed(3),
    goal: 0.4,
    node: process.version,
    cpus: (await import('node:os')).cpus().length,
  };
  mkdirSync(new URL('./out/', import.meta.url), { recursive: true });
  writeFileSync(new URL('./out/telemetry-ingest.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
  console.log(
    `HTTP ingest reached ${(result.ratioToCopy * 100).toFixed(1)} % of the COPY rate (goal 40 %): ${result.ratioToCopy >= 0.4 ? 'met' : 'NOT met'}`,
  );
} finally {
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
  await cluster.destroy();
}
