import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../../testing/run-cli.js';

function runDemo(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'dev-only', 'demo', 'run-demo.js'), ...args], {
      env: { PATH: process.env['PATH'], HOME: process.env['HOME'] },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const demoDirs = () => readdirSync(tmpdir()).filter((d) => d.startsWith('pms-demo-'));

describe('npm run demo', () => {
  test('runs the whole chain, loses nothing, ends with a one-line summary and cleans up after itself', async () => {
    const before = demoDirs();
    const outDir = mkdtempSync(join(tmpdir(), 'pms-report-demo-'));
    const result = await runDemo(['--out-dir', outDir]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    // The example monthly report outlives the demo, where it says.
    const report = /monthly evidence report: (\S+)/.exec(result.stdout)?.[1];
    assert.equal(report, join(outDir, `report-${new Date().toISOString().slice(0, 7)}.html`));
    assert.match(readFileSync(report, 'utf8'), /<tr data-backup-id=/);
    rmSync(outDir, { recursive: true, force: true });
    const lines = result.stdout.trim().split('\n');
    assert.match(
      lines[lines.length - 1] ?? '',
      /^PMS demo OK in \d+ s: (\d+) readings acknowledged = \1 stored = \1 restored by PITR after deleting [1-9]\d*; patient partial restore (\d+)\/\2; backups verified$/,
    );
    assert.match(result.stdout, /\[11\/11\] Comparing/);
    assert.doesNotMatch(result.stdout, /FAIL/);
    assert.match(result.stdout, /DEMO-ONLY/);
    assert.deepEqual(
      demoDirs().filter((d) => !before.includes(d)),
      [],
      'no demo directory left behind',
    );
  });

  test('--keep leaves the stack running and prints how to connect and how to stop it', async () => {
    const result = await runDemo(['--keep']);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const psql = /psql -h (\S+) -p (\d+) -U postgres patient_telemetry/.exec(result.stdout);
    assert.ok(psql, 'prints a psql command');
    const stop = /Stop everything: +(.*)$/m.exec(result.stdout)?.[1];
    assert.ok(stop, 'prints how to stop it');
    const check = spawn(
      'psql',
      ['-h', psql[1]!, '-p', psql[2]!, '-U', 'postgres', '-d', 'patient_telemetry', '-Atc', 'SELECT count(*) > 0 FROM telemetry.reading'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    check.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    await new Promise((resolve) => check.once('close', resolve));
    assert.equal(out.trim(), 't', 'the kept server answers');
    // Run the printed stop commands exactly (pg_ctl as the server's OS user when we are root).
    const asUser = process.getuid?.() === 0 ? 'runuser -u postgres -- ' : '';
    const commands = stop.split('; ').map((c) => (c.startsWith('pg_ctl') ? `${asUser}${join('/usr/lib/postgresql/15/bin', c)}` : c));
    const stopped = spawn('bash', ['-c', commands.join(' && ')], { stdio: 'ignore' });
    assert.equal(await new Promise((resolve) => stopped.once('close', resolve)), 0);
  });
});
