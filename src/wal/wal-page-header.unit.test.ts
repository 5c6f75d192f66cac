import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isPmsError } from '../errors/catalogue.js';
import {
  LONG_HEADER_BYTES,
  PG15_XLOG_PAGE_MAGIC,
  parseSegmentHeader,
  readControlSystemIdentifier,
  readSegmentHeader,
} from './wal-page-header.js';
import { WAL_SEGMENT_BYTES } from './wal-file-name.js';

const NAME = '000000010000000000000003';
// Larger than 2^53: a number would round it, and wal-push compares it with pg_control's.
const SYSTEM_ID = 7_301_234_567_890_123_457n;

/** The first bytes of a segment as PostgreSQL 15 writes them (XLogLongPageHeaderData). */
function longHeader(fields: { magic?: number; info?: number; timeline?: number; systemId?: bigint; segmentBytes?: number } = {}): Buffer {
  const buffer = Buffer.alloc(LONG_HEADER_BYTES + 24);
  buffer.writeUInt16LE(fields.magic ?? PG15_XLOG_PAGE_MAGIC, 0);
  buffer.writeUInt16LE(fields.info ?? 0x0002 | 0x0004, 2); // XLP_LONG_HEADER | XLP_BKP_REMOVABLE
  buffer.writeUInt32LE(fields.timeline ?? 1, 4);
  buffer.writeBigUInt64LE(3n * BigInt(WAL_SEGMENT_BYTES), 8); // xlp_pageaddr: not the system id
  buffer.writeBigUInt64LE(fields.systemId ?? SYSTEM_ID, 24);
  buffer.writeUInt32LE(fields.segmentBytes ?? WAL_SEGMENT_BYTES, 32);
  buffer.writeUInt32LE(8192, 36);
  return buffer;
}

const dir = mkdtempSync(join(tmpdir(), 'pms-wal-header-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a PostgreSQL 15 long page header gives the system identifier exactly, the timeline and the segment size', () => {
  assert.deepEqual(parseSegmentHeader(longHeader({ timeline: 0x2a }), NAME), {
    systemIdentifier: '7301234567890123457',
    timeline: 0x2a,
    segmentBytes: WAL_SEGMENT_BYTES,
  });
  assert.equal(parseSegmentHeader(longHeader({ systemId: 2n ** 64n - 1n }), NAME).systemIdentifier, '18446744073709551615');
});

test('a header inside a larger buffer is read at its own offset, not at the start of the buffer', () => {
  const backing = Buffer.concat([Buffer.alloc(13, 0xee), longHeader({ timeline: 5 })]);
  const view = new Uint8Array(backing.buffer, backing.byteOffset + 13, LONG_HEADER_BYTES);
  assert.equal(parseSegmentHeader(view, NAME).timeline, 5);
});

test('fewer bytes than a long header is PMS_ERR_INTEGRITY naming the file and its size, down to the last byte', () => {
  assert.throws(
    () => parseSegmentHeader(longHeader().subarray(0, LONG_HEADER_BYTES - 1), NAME),
    (error) => isPmsError(error, 'PMS_ERR_INTEGRITY') && error.message.includes(`${NAME} is 39 bytes`),
  );
  assert.throws(
    () => parseSegmentHeader(new Uint8Array(), NAME),
    (error) => isPmsError(error, 'PMS_ERR_INTEGRITY'),
  );
  assert.equal(parseSegmentHeader(longHeader().subarray(0, LONG_HEADER_BYTES), NAME).timeline, 1);
});

test('another major version’s magic, or a short page header, is not taken for a PostgreSQL 15 segment', () => {
  for (const magic of [0xd10d /* PostgreSQL 14 */, 0xd113 /* PostgreSQL 16 */, 0]) {
    assert.throws(
      () => parseSegmentHeader(longHeader({ magic }), NAME),
      (error) => isPmsError(error, 'PMS_ERR_INTEGRITY') && error.message.includes(`magic 0x${magic.toString(16)}`),
    );
  }
  // A continuation page (no XLP_LONG_HEADER) does not carry the system identifier at offset 24.
  assert.throws(
    () => parseSegmentHeader(longHeader({ info: 0x0001 }), NAME),
    (error) => isPmsError(error, 'PMS_ERR_INTEGRITY'),
  );
});

test('a segment size other than 16 MiB is a configuration problem (PMS_ERR_CONFIG), not corruption', () => {
  assert.throws(
    () => parseSegmentHeader(longHeader({ segmentBytes: 64 * 1024 * 1024 }), NAME),
    (error) => isPmsError(error, 'PMS_ERR_CONFIG') && error.message.includes('wal_segment_size 67108864'),
  );
});

test('readSegmentHeader reads the header from the start of a file; a file shorter than it is PMS_ERR_INTEGRITY', async () => {
  const whole = join(dir, NAME);
  writeFileSync(whole, Buffer.concat([longHeader({ timeline: 3 }), Buffer.alloc(8192)]));
  assert.equal((await readSegmentHeader(whole, NAME)).timeline, 3);
  const short = join(dir, 'short');
  writeFileSync(short, longHeader().subarray(0, 20));
  await assert.rejects(readSegmentHeader(short, NAME), (error) => isPmsError(error, 'PMS_ERR_INTEGRITY'));
});

test('the system identifier of a data directory is the first 8 bytes of global/pg_control, little-endian', async () => {
  const dataDir = join(dir, 'data');
  mkdirSync(join(dataDir, 'global'), { recursive: true });
  const control = Buffer.alloc(8192);
  control.writeBigUInt64LE(SYSTEM_ID, 0);
  writeFileSync(join(dataDir, 'global', 'pg_control'), control);
  assert.equal(await readControlSystemIdentifier(dataDir), SYSTEM_ID.toString());
});

test('outside a data directory wal-fetch is told to run as restore_command; a truncated pg_control is PMS_ERR_INTEGRITY', async () => {
  await assert.rejects(
    readControlSystemIdentifier(join(dir, 'not-a-data-dir')),
    (error) => isPmsError(error, 'PMS_ERR_CONFIG') && /ENOENT.*restore_command/.test(error.message),
  );
  const truncated = join(dir, 'truncated');
  mkdirSync(join(truncated, 'global'), { recursive: true });
  writeFileSync(join(truncated, 'global', 'pg_control'), Buffer.alloc(7));
  await assert.rejects(readControlSystemIdentifier(truncated), (error) => isPmsError(error, 'PMS_ERR_INTEGRITY'));
});
