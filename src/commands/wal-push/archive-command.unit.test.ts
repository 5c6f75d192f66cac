import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, beforeEach, describe, test } from 'node:test';
import { shellFirstArchiveCommand } from './archive-command.js';
import {
  IN_FLIGHT_PREFIX,
  LINK_SUFFIX,
  MARKER_DIR,
  PUSHER_PID_FILE,
  claimPusherPid,
  clearInFlight,
  consumePushMarker,
  fileIdentity,
  hasValidMarker,
  identityToken,
  linkForProof,
  markerNameOf,
  noteInFlight,
  releasePusherPid,
  removeStaleMarkers,
  writePushMarker,
} from './push-marker.js';

const SEGMENT = '000000010000000000000007';
/** The server run startPostmaster describes (postmaster.pid's pid and start time). */
const SERVER_RUN = '4242-1796233187';
const NODE_PATH_EXIT = 42;

/** What PostgreSQL's archiver does with the command: %p, %f and %% expanded, run by sh in the data directory. */
function expanded(name: string): string {
  const template = shellFirstArchiveCommand(`/bin/sh -c 'exit ${NODE_PATH_EXIT}'`);
  return template.replace(/%([pf%])/g, (_all, c: string) => (c === 'p' ? `pg_wal/${name}` : c === 'f' ? name : '%'));
}

function runArchiveCommand(dataDir: string, name = SEGMENT): number {
  const run = spawnSync('/bin/sh', ['-c', expanded(name)], { cwd: dataDir, encoding: 'utf8' });
  assert.equal(run.error, undefined);
  return run.status ?? -1;
}

/**
 * The same, running while the test acts, with a `sleep` that stands still until the test lets it
 * go: `look()` resolves once the shell is in its next wait, `go()` ends that wait. So each step
 * the test takes falls between two looks of the shell, whatever the machine's load.
 */
function startArchiveCommand(dataDir: string, name = SEGMENT): { exit: Promise<number>; look(): Promise<void>; go(): void } {
  const gate = mkdtempSync(join(root, 'sleep-'));
  writeFileSync(
    join(gate, 'sleep'),
    `#!/bin/sh\nn=$(ls ${gate} | grep -c '^looked')\n: > ${gate}/looked-$n\nwhile [ ! -e ${gate}/go-$n ]; do /bin/sleep 0.01; done\n`,
    { mode: 0o755 },
  );
  const child = spawn('/bin/sh', ['-c', expanded(name)], {
    cwd: dataDir,
    stdio: 'ignore',
    env: { ...process.env, PATH: `${gate}:${process.env['PATH'] ?? ''}` },
  });
  let looks = 0;
  let gone = 0;
  let exitCode: number | undefined;
  const exit = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      exitCode = code ?? -1;
      resolve(exitCode);
    });
  });
  return {
    exit,
    async look() {
      while (!existsSync(join(gate, `looked-${looks}`))) {
        if (exitCode !== undefined) assert.fail(`the shell exited ${exitCode} instead of looking again`);
        await sleep(5);
      }
      looks += 1;
    },
    go() {
      writeFileSync(join(gate, `go-${gone}`), '');
      gone += 1;
    },
  };
}

const root = mkdtempSync(join(tmpdir(), 'pms-archive-command-'));
let dataDir: string;
let walPath: string;
let n = 0;

function startPostmaster(start: string): void {
  writeFileSync(join(dataDir, 'postmaster.pid'), `4242\n${dataDir}\n${start}\n5432\n/tmp\n`);
}

beforeEach(() => {
  n += 1;
  dataDir = join(root, `data-${n}`);
  mkdirSync(join(dataDir, 'pg_wal'), { recursive: true });
  startPostmaster('1796233187');
  walPath = join(dataDir, 'pg_wal', SEGMENT);
  writeFileSync(walPath, Buffer.alloc(8192, 7));
});

after(() => rmSync(root, { recursive: true, force: true }));

/** What the pusher does: link, read (here: stat), store, then the note. */
async function archivedAhead(): Promise<void> {
  await linkForProof(walPath);
  assert.equal(await writePushMarker(walPath, 'ab'.repeat(32), fileIdentity(statSync(walPath, { bigint: true }))), true);
}

const notes = (): string[] => readdirSync(join(dataDir, 'pg_wal', MARKER_DIR)).sort();
const NOTE = markerNameOf(SEGMENT, SERVER_RUN);
const notePath = (): string => join(dataDir, 'pg_wal', MARKER_DIR, NOTE);

/** Sets a file's mtime to the nanosecond (Node's utimes takes a double), as touch(1) does. */
function touchNs(path: string, seconds: bigint, nanoseconds: bigint): void {
  const frac = String(nanoseconds).padStart(9, '0');
  const run = spawnSync('touch', ['-m', '-d', `@${seconds}.${frac}`, path]);
  assert.equal(run.status, 0, run.stderr.toString());
}

describe('shell-first archive_command', () => {
  test('answers a file the pusher archived ahead without the Node command, and uses its note up', async () => {
    await archivedAhead();
    assert.equal(await hasValidMarker(walPath), true, 'Node agrees the note vouches for the file');
    assert.deepEqual(notes(), [NOTE, `${NOTE}${LINK_SUFFIX}`], 'a note and its link');
    assert.equal(runArchiveCommand(dataDir), 0);
    assert.equal(statSync(notePath()).size, 0, 'the note is emptied');
    assert.equal(await hasValidMarker(walPath), false, 'an emptied note vouches for nothing, in Node too');
    assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT, 'a second call has no note: Node decides');
    await removeStaleMarkers(join(dataDir, 'pg_wal'), (name) => name.length === 24);
    assert.deepEqual(notes(), [], "the pusher's sweep removes the used note and its link");
  });

  test("the note carries the file's mtime, never below it; this /bin/sh compares mtimes to the nanosecond", async () => {
    for (const ns of [123_456_789n, 999_999_999n, 1n, 0n]) {
      touchNs(walPath, 1796233187n, ns);
      await archivedAhead();
      const wal = statSync(walPath, { bigint: true }).mtimeNs;
      const note = statSync(notePath(), { bigint: true }).mtimeNs;
      assert.ok(note >= wal && note - wal < 1000n, `note ${note} for file ${wal}`);
      assert.equal(await hasValidMarker(walPath), true);
      // One microsecond later than the note: a write the shell must see.
      touchNs(walPath, (note + 1000n) / 1_000_000_000n, (note + 1000n) % 1_000_000_000n);
      assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT, `mtime 1 µs after the note (${ns})`);
      assert.equal(await hasValidMarker(walPath), false, 'Node sees the changed ctime');
    }
  });

  test('without its link (no hard links here) the shell defers to Node, which checks the content', async () => {
    await archivedAhead();
    rmSync(`${notePath()}${LINK_SUFFIX}`);
    // Removing the link moved the file's ctime: what a note written without one records.
    assert.equal(await writePushMarker(walPath, 'ab'.repeat(32), fileIdentity(statSync(walPath, { bigint: true }))), true);
    assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT);
    assert.equal(await consumePushMarker(walPath), true, 'Node takes it');
    assert.deepEqual(notes(), [], 'and removes it');
  });

  test('the sweep keeps a valid note and its link, and drops links that pin nothing', async () => {
    const walDir = join(dataDir, 'pg_wal');
    const sweep = (busy: (name: string) => boolean = () => false): Promise<void> =>
      removeStaleMarkers(walDir, (name) => name.length === 24, busy);
    await archivedAhead();
    await sweep();
    assert.deepEqual(notes(), [NOTE, `${NOTE}${LINK_SUFFIX}`], 'a note that vouches stays, with its link');
    assert.equal(runArchiveCommand(dataDir), 0, 'and still answers');

    // A link whose push died before its note (a killed pusher): kept while a push holds the
    // file, in this process (busy) or another (the hold), then dropped.
    await sweep();
    await linkForProof(walPath);
    await sweep((name) => name === SEGMENT);
    assert.deepEqual(notes(), [`${NOTE}${LINK_SUFFIX}`], 'busy here');
    await noteInFlight(walDir, SEGMENT);
    await sweep();
    assert.deepEqual(notes(), [`${IN_FLIGHT_PREFIX}${SEGMENT}`, `${NOTE}${LINK_SUFFIX}`], 'held by another push');
    await clearInFlight(walDir, SEGMENT);
    await sweep();
    assert.deepEqual(notes(), [], 'then dropped');
    assert.equal(statSync(walPath).nlink, 1, 'the file is no longer pinned');

    // The WAL file removed (after a checkpoint): the link alone kept its blocks.
    await archivedAhead();
    rmSync(walPath);
    await sweep();
    assert.deepEqual(notes(), []);

    // A note of an older version (named by the file's identity) or of another server run.
    writeFileSync(walPath, Buffer.alloc(8192, 7));
    const identity = identityToken(fileIdentity(statSync(walPath, { bigint: true })));
    writeFileSync(join(walDir, MARKER_DIR, `${SEGMENT}@${SERVER_RUN}-${identity}`), '{"v":3}');
    writeFileSync(join(walDir, MARKER_DIR, `${SEGMENT}@4242-1796230000`), '{"v":4}');
    await sweep();
    assert.deepEqual(notes(), []);
  });

  test('goes to Node when the file changed after it was archived (appended, rewritten, or replaced)', async () => {
    await archivedAhead();
    // A later write, as any would be: the file's last write came before it was read.
    await sleep(5);
    appendFileSync(walPath, 'x');
    assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT);
    assert.equal(await consumePushMarker(walPath), false, 'Node refuses it too');

    await archivedAhead();
    await sleep(5);
    writeFileSync(walPath, Buffer.alloc(8193, 8), { flag: 'r+' });
    assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT, 'rewritten in place');
    assert.equal(await hasValidMarker(walPath), false);

    // Replaced by a file that claims the old mtime: a new inode all the same.
    await archivedAhead();
    const mtime = statSync(walPath).mtime;
    writeFileSync(`${walPath}.new`, Buffer.alloc(8193, 7));
    utimesSync(`${walPath}.new`, mtime, mtime);
    renameSync(`${walPath}.new`, walPath);
    assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT);
    assert.equal(await hasValidMarker(walPath), false);
  });

  test('goes to Node after a server restart (another postmaster), or with no postmaster.pid', async () => {
    await archivedAhead();
    startPostmaster('1796239999');
    assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT);
    assert.equal(await hasValidMarker(walPath), false);
    rmSync(join(dataDir, 'postmaster.pid'));
    assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT);
  });

  test('never takes a link or a directory planted under the note name as a note', async () => {
    await archivedAhead();
    const note = notePath();
    rmSync(note);
    writeFileSync(join(root, `target-${n}`), '');
    symlinkSync(join(root, `target-${n}`), note);
    assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT);
    assert.equal(await consumePushMarker(walPath), false);
    rmSync(note);
    mkdirSync(note);
    assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT);
    assert.equal(await consumePushMarker(walPath), false);
  });

  test('never takes an empty file, or a file of another user, planted under the note name', async () => {
    await archivedAhead();
    const note = notePath();
    writeFileSync(note, '');
    assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT, 'empty');
    assert.equal(await hasValidMarker(walPath), false);
    writeFileSync(note, '{"v":3}');
    chownSync(note, 65534, 65534);
    assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT, "another user's");
    assert.equal(await consumePushMarker(walPath), false);
    chownSync(note, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
    assert.equal(runArchiveCommand(dataDir), 0, 'the same note, ours again');
  });

  test('the identity Node writes is what stat(1) prints, before 1970 too', async () => {
    for (const seconds of [-1.5, -0.25, -3, 0.000000123, 1796233187.5]) {
      utimesSync(walPath, seconds, seconds);
      const shell = spawnSync('stat', ['-L', '-c', '%d-%i-%s-%.9Y-%.9Z', walPath], { encoding: 'utf8' }).stdout.trim();
      const node = identityToken(fileIdentity(statSync(walPath, { bigint: true })));
      // ctime is now, not settable: compare the fields up to and including mtime.
      assert.equal(node.split('-').slice(0, -1).join('-'), shell.split('-').slice(0, -1).join('-'), `mtime ${seconds}`);
    }
  });

  test('refuses a wal-push path so long that PostgreSQL 15 would cut the expanded command', () => {
    assert.ok(shellFirstArchiveCommand(`/${'p'.repeat(300)}/pms-backup wal-push`).length < 1023);
    assert.throws(() => shellFirstArchiveCommand(`/${'p'.repeat(700)}/pms-backup wal-push`), /PostgreSQL 15 cuts it at 1023/);
  });

  test("a note for one file never answers another file's call", async () => {
    await archivedAhead();
    writeFileSync(join(dataDir, 'pg_wal', '000000010000000000000008'), Buffer.alloc(8192, 7));
    assert.equal(runArchiveCommand(dataDir, '000000010000000000000008'), NODE_PATH_EXIT);
    assert.equal(runArchiveCommand(dataDir), 0);
  });

  describe('a file the live pusher holds', { timeout: 60_000 }, () => {
    const walDir = (): string => join(dataDir, 'pg_wal');
    const hold = (): string => join(walDir(), MARKER_DIR, `${IN_FLIGHT_PREFIX}${SEGMENT}`);

    test('is waited for in the shell and answered by the note written meanwhile, without Node', async () => {
      await claimPusherPid(walDir(), SERVER_RUN);
      await noteInFlight(walDir(), SEGMENT);
      const shell = startArchiveCommand(dataDir);
      // Three looks while the hold lasts: the shell neither exits nor starts Node meanwhile.
      for (let i = 0; i < 3; i++) {
        await shell.look();
        shell.go();
      }
      await shell.look();
      await archivedAhead();
      await clearInFlight(walDir(), SEGMENT);
      shell.go();
      assert.equal(await shell.exit, 0, 'answered by the note, not by the Node command');
    });

    test('goes to Node once the hold ends without a note (the push failed)', async () => {
      await claimPusherPid(walDir(), SERVER_RUN);
      await noteInFlight(walDir(), SEGMENT);
      const shell = startArchiveCommand(dataDir);
      await shell.look();
      shell.go();
      await shell.look();
      await clearInFlight(walDir(), SEGMENT);
      shell.go();
      assert.equal(await shell.exit, NODE_PATH_EXIT);
    });

    test('is not waited for when pusher.pid is missing or names a dead process', async () => {
      await noteInFlight(walDir(), SEGMENT);
      assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT, 'no pusher.pid');
      const dead = spawnSync('/bin/sh', ['-c', 'echo $$']).stdout.toString().trim();
      writeFileSync(join(walDir(), MARKER_DIR, PUSHER_PID_FILE), `${dead} ${SERVER_RUN}\n`);
      assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT, 'a dead pusher');
      // A live process, but named for another server run: a killed pusher's file whose pid was
      // reused (a restarted container) is not believed.
      writeFileSync(join(walDir(), MARKER_DIR, PUSHER_PID_FILE), `${process.pid} 4242-1796230000\n`);
      assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT, 'another server run');
      writeFileSync(join(walDir(), MARKER_DIR, PUSHER_PID_FILE), `${process.pid}\n`);
      assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT, 'no server run named');
      assert.ok(existsSync(hold()), 'the shell never removes a hold');
    });

    test('a hold that never ends is waited for 200 looks at most, then Node decides', async () => {
      // A sleep that returns at once and counts the looks.
      const gate = mkdtempSync(join(root, 'sleep-'));
      writeFileSync(join(gate, 'sleep'), `#!/bin/sh\necho >> ${gate}/looks\n`, { mode: 0o755 });
      await claimPusherPid(walDir(), SERVER_RUN);
      await noteInFlight(walDir(), SEGMENT);
      const run = spawnSync('/bin/sh', ['-c', expanded(SEGMENT)], {
        cwd: dataDir,
        env: { ...process.env, PATH: `${gate}:${process.env['PATH'] ?? ''}` },
      });
      assert.equal(run.status, NODE_PATH_EXIT);
      assert.equal(readFileSync(join(gate, 'looks'), 'utf8').length, 200, 'one newline per look');
    });

    test('a live pusher without a hold gets one more look, then Node', async () => {
      await claimPusherPid(walDir(), SERVER_RUN);
      assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT);
      const shell = startArchiveCommand(dataDir);
      await shell.look();
      await archivedAhead();
      shell.go();
      assert.equal(await shell.exit, 0, 'a note written during that look answers the call');
    });

    test("pusher.pid names the pusher, drops a dead pusher's holds, and is released only by its writer", async () => {
      await noteInFlight(walDir(), SEGMENT);
      await claimPusherPid(walDir(), SERVER_RUN);
      assert.equal(existsSync(hold()), false, 'a hold left by an earlier pusher is dropped');
      const pidFile = join(walDir(), MARKER_DIR, PUSHER_PID_FILE);
      assert.equal(readFileSync(pidFile, 'utf8'), `${process.pid} ${SERVER_RUN}\n`);
      writeFileSync(pidFile, `1 ${SERVER_RUN}\n`);
      await releasePusherPid(walDir());
      assert.equal(readFileSync(pidFile, 'utf8'), `1 ${SERVER_RUN}\n`, "a successor's pusher.pid stays");
      await claimPusherPid(walDir(), SERVER_RUN);
      await releasePusherPid(walDir());
      assert.equal(existsSync(pidFile), false);
    });
  });
});
