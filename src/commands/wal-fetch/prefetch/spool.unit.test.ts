import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { WAL_SEGMENT_BYTES } from '../../../wal/wal-file-name.js';
import { PG15_XLOG_PAGE_MAGIC } from '../../../wal/wal-page-header.js';
import { serveFromSpool } from './fast-path.js';
import { LOCK_FILE, spoolDirectory, spoolRoot, takePrefetcherLock } from './spool.js';

const SYSTEM = '7300000000000000001';
const OTHER = '7300000000000000002';
const SEGMENT = '000000010000000000000007';
let dataDir: string;

/** The first bytes of a PostgreSQL 15 segment: the long page header of the given system. */
function segmentBytes(systemIdentifier: string, timeline = 1): Buffer {
  const bytes = Buffer.alloc(8192);
  bytes.writeUInt16LE(PG15_XLOG_PAGE_MAGIC, 0);
  bytes.writeUInt16LE(0x0002, 2);
  bytes.writeUInt32LE(timeline, 4);
  bytes.writeBigUInt64LE(BigInt(systemIdentifier), 24);
  bytes.writeUInt32LE(WAL_SEGMENT_BYTES, 32);
  bytes.writeUInt32LE(8192, 36);
  return bytes;
}

function spool(name: string, bytes: Buffer, options: { system?: string; allowUnsigned?: boolean } = {}): string {
  const directory = spoolDirectory(dataDir, options.system ?? SYSTEM, options.allowUnsigned ?? false);
  mkdirSync(directory, { recursive: true });
  writeFileSync(join(directory, name), bytes);
  return join(directory, name);
}

const serve = (name: string, flags: string[] = []) => serveFromSpool([...flags, name, 'pg_wal/RECOVERYXLOG'], dataDir);
const served = () => join(dataDir, 'pg_wal', 'RECOVERYXLOG');

beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'pms-spool-'));
  mkdirSync(join(dataDir, 'global'));
  const control = Buffer.alloc(8192);
  control.writeBigUInt64LE(BigInt(SYSTEM), 0);
  writeFileSync(join(dataDir, 'global', 'pg_control'), control);
  mkdirSync(join(dataDir, 'pg_wal'));
  // A live prefetcher (this process) holds the lock, so a hit starts none.
  mkdirSync(spoolRoot(dataDir), { recursive: true });
  assert.ok(takePrefetcherLock(dataDir));
});

afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

// serveFromSpool resolves relative paths against the working directory, as restore_command does.
const cwd = process.cwd();
async function inDataDir<T>(run: () => Promise<T>): Promise<T> {
  process.chdir(dataDir);
  try {
    return await run();
  } finally {
    process.chdir(cwd);
  }
}

test('a spooled segment of this system is moved onto %p, not copied', async () => {
  const path = spool(SEGMENT, segmentBytes(SYSTEM));
  assert.equal(await inDataDir(() => serve(SEGMENT)), true);
  assert.ok(!existsSync(path));
  assert.deepEqual(readFileSync(served()).subarray(0, 40), segmentBytes(SYSTEM).subarray(0, 40));
});

test("another system's spool directory is never looked at", async () => {
  const path = spool(SEGMENT, segmentBytes(OTHER), { system: OTHER });
  assert.equal(await inDataDir(() => serve(SEGMENT)), false);
  assert.ok(existsSync(path), 'left alone: not ours');
  assert.ok(!existsSync(served()));
});

test("a file in this system's directory whose page header names another system is removed, not served", async () => {
  const path = spool(SEGMENT, segmentBytes(OTHER));
  assert.equal(await inDataDir(() => serve(SEGMENT)), false);
  assert.ok(!existsSync(path));
  assert.ok(!existsSync(served()));
});

test('a segment of timeline 2 is not what a request for the same segment of timeline 1 gets', async () => {
  const path = spool('000000020000000000000007', segmentBytes(SYSTEM, 2));
  assert.equal(await inDataDir(() => serve(SEGMENT)), false);
  assert.ok(existsSync(path));
  assert.equal(await inDataDir(() => serve('000000020000000000000007')), true);
});

test('an entry older than an hour (a spool left by a recovery long ago) is removed, not served', async () => {
  const path = spool(SEGMENT, segmentBytes(SYSTEM));
  const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
  utimesSync(path, twoHoursAgo, twoHoursAgo);
  assert.equal(await inDataDir(() => serve(SEGMENT)), false);
  assert.ok(!existsSync(path));
});

test('history files are never served from the spool, and a link is never followed', async () => {
  spool('00000002.history', Buffer.from('1\t0/3000000\tno recovery target specified\n'));
  assert.equal(await inDataDir(() => serve('00000002.history')), false);
  const target = join(dataDir, 'elsewhere');
  writeFileSync(target, segmentBytes(SYSTEM));
  const directory = spoolDirectory(dataDir, SYSTEM, false);
  symlinkSync(target, join(directory, SEGMENT));
  assert.equal(await inDataDir(() => serve(SEGMENT)), false);
  assert.ok(existsSync(target));
});

test('WAL spooled under --allow-unsigned is served only to a wal-fetch with that flag', async () => {
  spool(SEGMENT, segmentBytes(SYSTEM), { allowUnsigned: true });
  assert.equal(await inDataDir(() => serve(SEGMENT)), false);
  assert.equal(await inDataDir(() => serve(SEGMENT, ['--allow-unsigned'])), true);
});

test('the flags restore --pitr writes, in either order, keep the fast path; an unknown or repeated flag leaves it to wal-fetch', async () => {
  for (const flags of [['--promote-at-end'], ['--allow-unsigned', '--promote-at-end'], ['--promote-at-end', '--allow-unsigned']]) {
    spool(SEGMENT, segmentBytes(SYSTEM), { allowUnsigned: flags.includes('--allow-unsigned') });
    assert.equal(await inDataDir(() => serve(SEGMENT, flags)), true, flags.join(' '));
    rmSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG'), { force: true });
  }
  for (const flags of [['--promote'], ['--promote-at-end', '--promote-at-end'], ['-x', '--allow-unsigned']]) {
    spool(SEGMENT, segmentBytes(SYSTEM));
    assert.equal(await inDataDir(() => serve(SEGMENT, flags)), false, flags.join(' '));
  }
});

test('one prefetcher: the lock is refused while its holder lives and taken over from a dead one', () => {
  assert.equal(takePrefetcherLock(dataDir), false, 'held by this live process');
  writeFileSync(join(spoolRoot(dataDir), LOCK_FILE), '999999999\n');
  assert.equal(takePrefetcherLock(dataDir), true);
  assert.equal(readFileSync(join(spoolRoot(dataDir), LOCK_FILE), 'utf8').trim(), String(process.pid));
});
