import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { openTelemetryPool } from '../../telemetry/db/telemetry-pool.js';
import { LogCapture, type TelemetryTestDb, startTelemetryTestDb } from '../../telemetry/testing/telemetry-harness.js';
import { buildServer } from '../../telemetry/api/build-server.js';
import { REPO_ROOT, runCli } from '../../testing/run-cli.js';
import { type DocFence, readSectionFences } from './doc-blocks.js';

// docs/telemetry.md "Status and corrections" shows a device correcting a reading and a reader
// seeing it, each command followed by the reply it gets. This runs those commands exactly as
// written, in one shell, against a real API on a real PostgreSQL, and compares every reply with
// the JSON block under it. "…" in a documented reply stands for a value that changes per run.

const DOC = join(REPO_ROOT, 'docs', 'telemetry.md');
const SECTION = 'Status and corrections';
const END = '@@pms-docs-block-end@@';

let db: TelemetryTestDb;
let pool: pg.Pool;
let app: FastifyInstance;
const env: Record<string, string> = {};

interface Step {
  readonly command: DocFence;
  readonly reply: DocFence;
}

function steps(): Step[] {
  const fences = readSectionFences(DOC, SECTION);
  const found: Step[] = [];
  fences.forEach((fence, i) => {
    if (fence.info !== 'bash runbook') return;
    const next = fences[i + 1];
    assert.ok(next?.info === 'json', `docs/telemetry.md:${fence.line}: a run block is followed by the JSON reply it gets`);
    found.push({ command: fence, reply: next });
  });
  return found;
}

/** Structural equality where the expected string "…" matches any string. */
function matches(actual: unknown, expected: unknown, path = '$'): string | undefined {
  if (expected === '…') return typeof actual === 'string' ? undefined : `${path}: a string, got ${JSON.stringify(actual)}`;
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length)
      return `${path}: ${expected.length} items, got ${JSON.stringify(actual)}`;
    for (let i = 0; i < expected.length; i += 1) {
      const why = matches(actual[i], expected[i], `${path}[${i}]`);
      if (why) return why;
    }
    return undefined;
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return `${path}: an object, got ${JSON.stringify(actual)}`;
    const want = Object.keys(expected).sort();
    const got = Object.keys(actual).sort();
    if (want.join() !== got.join()) return `${path}: keys ${want.join(',')}, got ${got.join(',')}`;
    for (const key of want) {
      const why = matches((actual as Record<string, unknown>)[key], (expected as Record<string, unknown>)[key], `${path}.${key}`);
      if (why) return why;
    }
    return undefined;
  }
  return actual === expected ? undefined : `${path}: ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}

function bash(script: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { env: { PATH: process.env['PATH'], ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('docs/telemetry.md: the correction examples run as written and get the replies shown', () => {
  before(async () => {
    db = await startTelemetryTestDb();
    // As the doc says: DEVICE_TOKEN from `device register`, READER_TOKEN from `reader register`
    // scoped to the device's patient, both run as the schema owner.
    const device = await runCli(
      'pms-telemetry',
      ['device', 'register', '--device-id', 'watch-1', '--patient-id', '9990000018', '--json'],
      db.env,
    );
    assert.equal(device.code, 0, device.stderr);
    const reader = await runCli(
      'pms-telemetry',
      ['reader', 'register', '--name', 'ward-7-dashboard', '--patient', '9990000018', '--json'],
      db.env,
    );
    assert.equal(reader.code, 0, reader.stderr);
    env['DEVICE_TOKEN'] = (JSON.parse(device.stdout) as { token: string }).token;
    env['READER_TOKEN'] = (JSON.parse(reader.stdout) as { token: string }).token;
    const config = db.ingestConfig();
    pool = await openTelemetryPool(config);
    ({ app } = await buildServer({ config, pool, logStream: new LogCapture() }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    env['TELEMETRY_URL'] = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await app?.close();
    await pool?.end().catch(() => undefined);
    await db?.destroy();
  });

  test('every command of "Status and corrections" gets the reply documented under it', async () => {
    const all = steps();
    assert.ok(all.length >= 5, `the section runs its examples (found ${all.length})`);
    // One shell, as a person pasting them in order would: later blocks use the first block's
    // MEASURED_AT and observation().
    const script = all.map((s) => `${s.command.code}\nprintf '\\n${END}\\n'`).join('\n');
    const run = await bash(script);
    assert.equal(run.code, 0, `the blocks ran: ${run.stderr}`);
    const outputs = run.stdout.split(`\n${END}\n`);
    all.forEach((step, i) => {
      const output = (outputs[i] ?? '').trim();
      let actual: unknown;
      try {
        actual = JSON.parse(output);
      } catch {
        assert.fail(`docs/telemetry.md:${step.command.line}: the reply is JSON, got ${JSON.stringify(output)}`);
      }
      const why = matches(actual, JSON.parse(step.reply.code));
      assert.equal(why, undefined, `docs/telemetry.md:${step.command.line}: ${why}\nthe reply was ${output}`);
    });
    // What the examples did is in the database as the doc says: three versions of f-1.
    const { rows } = await db.admin.query<{ version: number; status: string; value: number }>(
      "SELECT version, status, value::float8 AS value FROM telemetry.reading WHERE device_id = 'watch-1' AND reading_id = 'f-1' ORDER BY version",
    );
    assert.deepEqual(
      rows.map((r) => `${r.version}:${r.status}:${r.value}`),
      ['1:final:70', '2:amended:99', '3:entered-in-error:99'],
    );
  });
});
