import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { isRunning, parentPid, processArgv, processIds } from '../process/process-scan.js';
import { REPO_ROOT } from './run-cli.js';

test('a test process stopped by SIGTERM mid-start takes its Patroni, PostgreSQL and etcd with it and removes their files', async () => {
  const harness = pathToFileURL(join(REPO_ROOT, 'dist', 'testing', 'patroni-harness.js')).href;
  // One member: enough to have etcd, Patroni and a postmaster running; the start never completes
  // (no sync standby), so the signal lands while the harness is still waiting.
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { startPatroniCluster } from ${JSON.stringify(harness)}; await startPatroniCluster({ members: 1 });`,
    ],
    { env: { PATH: process.env['PATH'], HOME: process.env['HOME'] }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, sig) => resolve(sig)));

  // The cluster's directory, found through the etcd this very child started (other agents' tests
  // may have clusters of their own on this machine).
  let root: string | undefined;
  let postmaster: number | undefined;
  for (let i = 0; i < 1200 && postmaster === undefined; i += 1) {
    assert.equal(child.exitCode, null, `the child exited early: ${stderr}`);
    if (root === undefined) {
      const etcd = processIds().find((pid) => parentPid(pid) === child.pid && processArgv(pid).some((a) => a.endsWith('etcd')));
      const args = etcd === undefined ? [] : processArgv(etcd);
      const dataDir = args[args.indexOf('--data-dir') + 1];
      if (etcd !== undefined && dataDir) root = dirname(dataDir);
    }
    if (root !== undefined) {
      try {
        const pid = Number(readFileSync(join(root, 'm1', 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
        if (pid > 0 && isRunning(pid)) postmaster = pid;
      } catch {
        // not started yet
      }
    }
    await sleep(100);
  }
  assert.ok(root && postmaster, `PostgreSQL never started under Patroni: ${stderr}`);
  const patroni = processIds().filter((pid) => parentPid(pid) === child.pid);
  assert.ok(patroni.length >= 2, 'etcd and Patroni run as the child’s children');

  child.kill('SIGTERM');
  assert.equal(await exited, 'SIGTERM', 'the process still dies of the signal');
  const left = processIds().filter((pid) => isRunning(pid) && (pid === postmaster || processArgv(pid).join(' ').includes(root)));
  assert.deepEqual(left, [], 'no process of the cluster is left');
  for (const pid of patroni) assert.equal(isRunning(pid), false, `${pid} (${processArgv(pid).join(' ')}) stopped`);
  assert.equal(existsSync(root), false, `${root} removed`);
});
