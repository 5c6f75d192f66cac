// test-layer: alone: measures a failover's write outage, and checks that no pms-demo-/pms-patroni- directory is left, which HA tests beside it would create
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../../testing/run-cli.js';

/** Live (not zombie) processes whose command line names one of these paths. */
function processesMentioning(paths: readonly string[]): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const zombie = stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z';
      if (!zombie && paths.some((p) => cmdline.includes(p))) found.push(`${pid}: ${cmdline}`);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

const ours = () => readdirSync(tmpdir()).filter((d) => d.startsWith('pms-demo-') || d.startsWith('pms-patroni-'));

test('npm run demo -- --ha: the leader killed mid-ingest, acknowledged = stored, PITR across the failover, nothing left behind', async () => {
  const before = ours();
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'dev-only', 'demo', 'run-demo.js'), '--ha'], {
    env: { PATH: process.env['PATH'], HOME: process.env['HOME'] },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  assert.equal(code, 0, stdout + stderr);
  const lines = stdout.trim().split('\n');
  const summary = lines[lines.length - 1] ?? '';
  process.stdout.write(`# ${summary}\n`);
  assert.match(
    summary,
    /^PMS HA demo OK in \d+ s: (\d+) readings acknowledged = \1 stored, each once, across a failover \(m\d SIGKILLed, m\d promoted, write outage [\d.]+ s\); PITR after the failover from a base backup before it: (\d+) rows = \2 committed by then$/,
  );
  assert.doesNotMatch(stdout, /FAIL/);
  assert.match(stdout, /answers 503 with Retry-After/);
  // Everything it started, named in its output, is gone: directories and processes.
  const work = /work directory (\S+);/.exec(stdout)?.[1];
  const root = /cluster files (\S+)/.exec(stdout)?.[1];
  assert.ok(work && root, stdout);
  assert.deepEqual(processesMentioning([work, root]), [], 'no process of the demo is left');
  for (const path of [work, root]) assert.equal(existsSync(path), false, `${path} removed`);
  assert.deepEqual(
    ours().filter((d) => !before.includes(d)),
    [],
    'no demo directory left behind',
  );
});
