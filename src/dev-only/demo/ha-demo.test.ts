// test-layer: alone: measures a failover's write outage, which load from tests beside it would lengthen
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { processesMentioning } from '../../process/process-scan.js';
import { REPO_ROOT } from '../../testing/run-cli.js';
import { directoriesNamed } from './named-directories.js';

test('npm run demo -- --ha: the leader killed mid-ingest, acknowledged = stored, PITR across the failover, nothing left behind', async () => {
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
  const created = directoriesNamed(stdout + stderr);
  assert.ok(created.includes(work) && created.includes(root), `${work} and ${root} found in the output: ${created.join(' ')}`);
  assert.deepEqual(processesMentioning(created), [], 'no process of the demo is left');
  assert.deepEqual(
    created.filter((d) => existsSync(d)),
    [],
    'no directory of this run left behind',
  );
});
