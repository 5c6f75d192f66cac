import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
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
import { after, beforeEach, describe, test } from 'node:test';
import { shellFirstArchiveCommand } from './archive-command.js';
import {
  MARKER_DIR,
  consumePushMarker,
  fileIdentity,
  hasValidMarker,
  identityToken,
  markerNameOf,
  writePushMarker,
} from './push-marker.js';

const SEGMENT = '000000010000000000000007';
const NODE_PATH_EXIT = 42;

/** What PostgreSQL's archiver does with the command: %p, %f and %% expanded, run by sh in the data directory. */
function runArchiveCommand(dataDir: string, name = SEGMENT): number {
  const template = shellFirstArchiveCommand(`/bin/sh -c 'exit ${NODE_PATH_EXIT}'`);
  const command = template.replace(/%([pf%])/g, (_all, c: string) => (c === 'p' ? `pg_wal/${name}` : c === 'f' ? name : '%'));
  const run = spawnSync('/bin/sh', ['-c', command], { cwd: dataDir, encoding: 'utf8' });
  assert.equal(run.error, undefined);
  return run.status ?? -1;
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

async function archivedAhead(): Promise<void> {
  assert.equal(await writePushMarker(walPath, 'ab'.repeat(32), fileIdentity(statSync(walPath, { bigint: true }))), true);
}

const notes = (): string[] => readdirSync(join(dataDir, 'pg_wal', MARKER_DIR));

describe('shell-first archive_command', () => {
  test('answers a file the pusher archived ahead without the Node command, and consumes its note', async () => {
    await archivedAhead();
    assert.equal(await hasValidMarker(walPath), true, 'Node agrees the note vouches for the file');
    assert.equal(runArchiveCommand(dataDir), 0);
    assert.deepEqual(notes(), [], 'the note is consumed');
    assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT, 'a second call has no note: Node decides');
  });

  test('the name Node gives a note is the name the shell computes (stat -L, postmaster.pid)', async () => {
    await archivedAhead();
    const stats = statSync(walPath, { bigint: true });
    assert.deepEqual(notes(), [markerNameOf(SEGMENT, `4242-1796233187`, fileIdentity(stats))]);
    const shell = spawnSync('stat', ['-L', '-c', '%d-%i-%s-%.9Y-%.9Z', walPath], { encoding: 'utf8' }).stdout.trim();
    assert.equal(notes()[0], `${SEGMENT}@4242-1796233187-${shell}`);
  });

  test('goes to Node when the file changed after it was archived (appended, or replaced)', async () => {
    await archivedAhead();
    appendFileSync(walPath, 'x');
    assert.equal(runArchiveCommand(dataDir), NODE_PATH_EXIT);
    assert.equal(await consumePushMarker(walPath), false, 'Node refuses it too');

    await archivedAhead();
    writeFileSync(`${walPath}.new`, Buffer.alloc(8193, 7));
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
    const [name] = notes();
    const note = join(dataDir, 'pg_wal', MARKER_DIR, name as string);
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
    const [name] = notes();
    const note = join(dataDir, 'pg_wal', MARKER_DIR, name as string);
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
    assert.ok(shellFirstArchiveCommand(`/${'p'.repeat(500)}/pms-backup wal-push`).length < 1023);
    assert.throws(() => shellFirstArchiveCommand(`/${'p'.repeat(700)}/pms-backup wal-push`), /PostgreSQL 15 cuts it at 1023/);
  });

  test("a note for one file never answers another file's call", async () => {
    await archivedAhead();
    writeFileSync(join(dataDir, 'pg_wal', '000000010000000000000008'), Buffer.alloc(8192, 7));
    assert.equal(runArchiveCommand(dataDir, '000000010000000000000008'), NODE_PATH_EXIT);
    assert.equal(runArchiveCommand(dataDir), 0);
  });
});
