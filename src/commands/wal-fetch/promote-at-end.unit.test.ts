import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { isPmsError } from '../../errors/catalogue.js';
import { PROMOTION_CALLS, processAncestors, requestPromotion } from './promote-at-end.js';

const SEGMENT = '000000010000000000000007';
let dir: string;
/** Stands in for the postmaster: counts the SIGUSR1s it receives, and reports them on stdout. */
let postmaster: ChildProcess;
let signals = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pms-promote-'));
  postmaster = spawn(
    process.execPath,
    ['-e', "process.on('SIGUSR1', () => process.stdout.write('usr1\\n')); process.stdout.write('ready\\n'); setInterval(() => {}, 1000);"],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  postmaster.stdout?.setEncoding('utf8');
  postmaster.stdout?.on('data', (chunk: string) => {
    signals += chunk.split('\n').filter((l) => l === 'usr1').length;
  });
  await once(postmaster.stdout!, 'data');
});

after(() => {
  postmaster?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function signalsSettle(expected: number): Promise<void> {
  for (let i = 0; i < 100 && signals < expected; i += 1) await new Promise((r) => setTimeout(r, 20));
}

describe('promotion at the end of the archive (wal-fetch --promote-at-end)', () => {
  test('archive recovery (no standby.signal): nothing is asked, nothing written', () => {
    writeFileSync(join(dir, 'postmaster.pid'), `${postmaster.pid}\n${dir}\n`);
    assert.deepEqual(requestPromotion(dir, SEGMENT, [postmaster.pid!]), { outcome: 'not-a-standby' });
    assert.ok(!existsSync(join(dir, 'promote')));
  });

  test('postmaster.pid naming a process that is not our server: refused by name, no promote file, no signal', () => {
    writeFileSync(join(dir, 'standby.signal'), '');
    assert.throws(
      () => requestPromotion(dir, SEGMENT, [process.ppid]),
      (error: unknown) =>
        isPmsError(error, 'PMS_ERR_PROMOTION') && new RegExp(`names pid ${postmaster.pid}, which is not the server`).test(error.message),
    );
    writeFileSync(join(dir, 'postmaster.pid'), 'garbage\n');
    assert.throws(() => requestPromotion(dir, SEGMENT, [postmaster.pid!]), /does not start with a process id/);
    assert.ok(!existsSync(join(dir, 'promote')));
    assert.equal(signals, 0);
  });

  test(`a server that never acts: asked ${PROMOTION_CALLS} times, then the next call fails with PMS_ERR_PROMOTION; another segment starts again`, async () => {
    writeFileSync(join(dir, 'postmaster.pid'), `${postmaster.pid}\n${dir}\n`);
    for (let call = 1; call <= PROMOTION_CALLS; call += 1) {
      assert.deepEqual(requestPromotion(dir, SEGMENT, [4242, postmaster.pid!]), {
        outcome: 'requested',
        postmaster: postmaster.pid,
        calls: call,
      });
      assert.ok(existsSync(join(dir, 'promote')), 'the promote file pg_ctl promote would write');
      // Each call is its own restore_command run; signals sent back to back would coalesce.
      await signalsSettle(call);
    }
    assert.equal(signals, PROMOTION_CALLS, 'one SIGUSR1 to the postmaster per call');
    assert.throws(
      () => requestPromotion(dir, SEGMENT, [postmaster.pid!]),
      (error: unknown) =>
        isPmsError(error, 'PMS_ERR_PROMOTION') && /has not: stopping recovery rather than waiting as a standby forever/.test(error.message),
    );
    assert.equal(readFileSync(join(dir, 'pg_wal', '.pms-prefetch', 'promotion'), 'utf8'), `${SEGMENT} ${PROMOTION_CALLS + 1}\n`);
    // A request made early (the old timeline's copy was read next) and a later end elsewhere.
    assert.equal(requestPromotion(dir, '000000010000000000000009', [postmaster.pid!]).outcome, 'requested');
  });

  test('a request PostgreSQL consumed (the promote file gone) is made again rather than failed', () => {
    for (let call = 1; call <= PROMOTION_CALLS; call += 1) requestPromotion(dir, '00000001000000000000000A', [postmaster.pid!]);
    unlinkSync(join(dir, 'promote'));
    const again = requestPromotion(dir, '00000001000000000000000A', [postmaster.pid!]);
    assert.equal(again.outcome, 'requested');
  });

  test('processAncestors reads this process’s parent chain from /proc', () => {
    const ancestors = processAncestors();
    assert.equal(ancestors[0], process.ppid);
    assert.ok(ancestors.length >= 1);
  });
});
