import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { isRunning, parentPid, processArgv, processesMentioning, waitUntilNoneMention } from './process-scan.js';

test('a process whose argv names a path is found while it runs and not after it was killed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pms-scan-'));
  // argv0 puts the path in the command line of a real sleep, as a postmaster's -D would.
  const child = spawn('sleep', ['30'], { argv0: join(dir, 'marker'), stdio: 'ignore' });
  try {
    await once(child, 'spawn');
    const pid = child.pid;
    assert.ok(pid !== undefined);
    // Between fork and exec the child still shows node's argv: wait for sleep's.
    for (let i = 0; i < 50 && processArgv(pid)[0] !== join(dir, 'marker'); i++) await sleep(20);
    assert.deepEqual(processArgv(pid), [join(dir, 'marker'), '30']);
    assert.equal(parentPid(pid), process.pid);
    assert.equal(isRunning(pid), true);
    assert.deepEqual(processesMentioning([`${dir}/`]), [{ pid, commandLine: `${dir}/marker 30` }]);
    assert.deepEqual(processesMentioning([`${dir}-other/`]), [], 'a sibling prefix is not a match');

    const start = Date.now();
    assert.equal((await waitUntilNoneMention([`${dir}/`], 300)).length, 1, 'still there after the timeout');
    assert.ok(Date.now() - start >= 300);

    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    assert.deepEqual(await waitUntilNoneMention([`${dir}/`], 5_000), [], 'gone once killed');
    await exited;
    assert.deepEqual(processesMentioning([`${dir}/`]), []);
    assert.equal(isRunning(pid), false);
    assert.deepEqual(processArgv(pid), []);
    assert.equal(parentPid(pid), undefined);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a zombie is not running, and the scanning process never mentions itself', async () => {
  // sh starts a short sleep, then becomes a long one that never reaps it: a zombie child of ours' child.
  // The short one must outlive the exec: one that ended before it was reaped by sh itself (CI, under load).
  const parent = spawn('sh', ['-c', 'sleep 1 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const [line] = (await once(parent.stdout.setEncoding('utf8'), 'data')) as [string];
    const zombie = Number(line.trim());
    for (let i = 0; i < 500 && isRunning(zombie); i++) await sleep(20);
    assert.equal(isRunning(zombie), false, 'the unreaped child counts as stopped');
    assert.equal(parentPid(zombie), parent.pid, 'although it is still in /proc');
    // The empty needle is in every command line.
    const everyone = processesMentioning(['']).map((p) => p.pid);
    assert.ok(parent.pid !== undefined && everyone.includes(parent.pid));
    assert.equal(everyone.includes(zombie), false, 'no zombie');
    assert.equal(everyone.includes(process.pid), false, 'this very process is left out');
  } finally {
    parent.kill('SIGKILL');
  }
});
