import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { isRunning, processesMentioning } from '../../process/process-scan.js';
import { REPO_ROOT } from '../../testing/run-cli.js';
import { directoriesNamed } from './named-directories.js';

/** The run named at least one directory of its own, and none of them is left. */
function assertNoDirectoryLeft(output: string): void {
  const created = directoriesNamed(output);
  assert.notDeepEqual(created, [], output);
  assert.deepEqual(
    created.filter((d) => existsSync(d)),
    [],
    'no directory of this run left behind',
  );
}

/** Debian's default PATH for root, without /usr/local (where this machine has a pg_ctl Debian does not). */
const DEBIAN_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

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

/** Starts the demo and resolves with its output so far once `line` appears in it (the run goes on). */
function startDemo(args: string[], line: RegExp) {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'dev-only', 'demo', 'run-demo.js'), ...args], {
    env: { PATH: process.env['PATH'], HOME: process.env['HOME'] },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
  const reached = new Promise<RegExpExecArray>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      output.stdout += c;
      const found = line.exec(output.stdout);
      if (found) resolve(found);
    });
    closed.then(() => reject(new Error(`the demo ended before ${line}: ${output.stdout}${output.stderr}`)));
  });
  child.stderr.setEncoding('utf8').on('data', (c: string) => (output.stderr += c));
  return { child, output, closed, reached };
}

describe('npm run demo', () => {
  test('runs the whole chain, loses nothing, ends with a one-line summary and cleans up after itself', async () => {
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
    assertNoDirectoryLeft(result.stdout + result.stderr);
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
    // What the line must stop and remove, read before it runs.
    const dataDirs = [...stop.matchAll(/ -D (\S+) /g)].map((m) => m[1]!);
    assert.equal(dataDirs.length, 2, `stops both servers: ${stop}`);
    const postmasters = dataDirs.map((d) => Number(readFileSync(join(d, 'postmaster.pid'), 'utf8').split('\n')[0]));
    const gpgHomes = [...stop.matchAll(/gpgconf --homedir (\S+) --kill gpg-agent/g)].map((m) => m[1]!);
    assert.equal(gpgHomes.length, 2, `kills the agents of both demo key homes: ${stop}`);
    const removed = /rm -rf (.+)$/.exec(stop)?.[1]?.split(' ') ?? [];
    for (const path of [...dataDirs, ...gpgHomes]) {
      assert.ok(
        removed.some((r) => path.startsWith(`${r}/`)),
        `${path} is under a removed directory`,
      );
    }
    for (const path of removed) assert.ok(existsSync(path), `${path} exists before the stop line`);
    // Exactly the printed line, in a fresh bash as the operator (root here) would paste it.
    const stopped = spawn('bash', ['-c', stop], {
      env: { PATH: DEBIAN_PATH, HOME: process.env['HOME'] ?? '/root' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stopOutput = '';
    stopped.stdout.setEncoding('utf8').on('data', (c: string) => (stopOutput += c));
    stopped.stderr.setEncoding('utf8').on('data', (c: string) => (stopOutput += c));
    assert.equal(await new Promise((resolve) => stopped.once('close', resolve)), 0, stopOutput);
    // pg_ctl -w returns once postmaster.pid is gone, a moment before the postmaster itself exits.
    for (const pid of postmasters) {
      for (let i = 0; i < 50 && isRunning(pid); i++) await sleep(100);
      assert.equal(isRunning(pid), false, `postmaster ${pid} stopped`);
    }
    assert.deepEqual(processesMentioning(removed), [], 'no process (postmaster, gpg-agent) of the demo is left');
    for (const path of removed) assert.equal(existsSync(path), false, `${path} removed`);
  });

  test('--help says what --keep keeps, and that a failed or interrupted run removes everything', async () => {
    const result = await runDemo(['--help']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /--keep +after a successful run/);
    assert.match(result.stdout, /a run\s+that fails removes everything it started, --keep or not/);
    assert.match(result.stdout, /Interrupted \(Ctrl-C, SIGTERM, SIGHUP\), either demo removes everything it started/);
  });

  test('--keep with a run that fails (--fail-at-step 5, once PostgreSQL, the API and ingest run) removes everything anyway', async () => {
    const result = await runDemo(['--keep', '--fail-at-step', '5']);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stdout, /PMS demo FAILED: --fail-at-step 5: failing on purpose at step 5/);
    assert.doesNotMatch(result.stdout, /still running|Stop everything/);
    const work = /repository file:\/\/(\S+)\/repository/.exec(result.stdout)?.[1];
    const api = Number(/ingest API on \S+ \(pid (\d+)\)/.exec(result.stdout)?.[1]);
    assert.ok(work && api > 0, result.stdout);
    assert.equal(isRunning(api), false, 'the API was stopped');
    assert.deepEqual(processesMentioning([work]), [], 'no postmaster (or WAL pusher) of the demo is left');
    assert.equal(existsSync(work), false, `${work} removed`);
    assertNoDirectoryLeft(result.stdout + result.stderr);
  });

  test('--ha interrupted by SIGTERM once the API runs: the API, the cluster and the work directories are removed, exit 143', async () => {
    const demo = startDemo(['--ha'], /ingest API on \S+ \(pid (\d+)\)/);
    const api = Number((await demo.reached)[1]);
    const work = /work directory (\S+);/.exec(demo.output.stdout)?.[1];
    const root = /cluster files (\S+)/.exec(demo.output.stdout)?.[1];
    assert.ok(work && root && isRunning(api), demo.output.stdout);
    demo.child.kill('SIGTERM');
    assert.equal(await demo.closed, 143, demo.output.stdout + demo.output.stderr);
    assert.match(demo.output.stdout, /PMS demo INTERRUPTED by SIGTERM/);
    for (let i = 0; i < 50 && isRunning(api); i++) await sleep(100);
    assert.equal(isRunning(api), false, 'the API was stopped');
    assert.deepEqual(processesMentioning([work, root]), [], 'no process of the demo (Patroni, PostgreSQL, etcd, WAL pusher) is left');
    for (const path of [work, root]) assert.equal(existsSync(path), false, `${path} removed`);
  });
});
