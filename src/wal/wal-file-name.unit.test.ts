import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WAL_SEGMENT_BYTES, formatLsn, parseLsn, parseWalFileName, segmentBeforeLsn, segmentName, segmentOfLsn } from './wal-file-name.js';

test('each kind of file PostgreSQL archives is classified with its timeline and segment number', () => {
  assert.deepEqual(parseWalFileName('000000010000000000000003'), {
    kind: 'segment',
    name: '000000010000000000000003',
    timeline: 1,
    segment: 3,
  });
  assert.deepEqual(parseWalFileName('0000000200000001000000A0.partial'), {
    kind: 'partial',
    name: '0000000200000001000000A0.partial',
    timeline: 2,
    segment: 256 + 0xa0,
  });
  assert.deepEqual(parseWalFileName('000000010000000000000002.00000028.backup'), {
    kind: 'backup-history',
    name: '000000010000000000000002.00000028.backup',
    timeline: 1,
    segment: 2,
  });
  assert.deepEqual(parseWalFileName('0000000A.history'), { kind: 'history', name: '0000000A.history', timeline: 10 });
});

test('names PostgreSQL would not archive are refused: lower-case hex, wrong length, stray suffixes, paths', () => {
  for (const name of [
    '00000001000000000000000a',
    '00000001000000000000003',
    '0000000100000000000000030',
    '000000010000000000000003.gz',
    '000000010000000000000003.partial.zst',
    '000000010000000000000002.backup',
    '000000010000000000000002.0000002.backup',
    '00000001.History',
    '0000001.history',
    'pg_wal/000000010000000000000003',
    ' 000000010000000000000003',
    '000000010000000000000003\n',
    '',
  ]) {
    assert.equal(parseWalFileName(name), undefined, JSON.stringify(name));
  }
});

test('a low part above FF, which 16 MiB segments never reach, is refused instead of aliasing another segment', () => {
  // 0x1FF would otherwise be segment 511, the number of 0000000100000001000000FF.
  assert.equal(parseWalFileName('0000000100000000000001FF'), undefined);
  assert.equal(parseWalFileName('000000010000000000000100.partial'), undefined);
  assert.equal(parseWalFileName('0000000100000000FFFFFFFF.00000028.backup'), undefined);
  assert.equal(parseWalFileName('0000000100000001000000FF')?.kind, 'segment');
});

test('timeline 0 does not exist (timelines start at 1) and is refused for every kind', () => {
  assert.equal(parseWalFileName('000000000000000000000001'), undefined);
  assert.equal(parseWalFileName('000000000000000000000001.partial'), undefined);
  assert.equal(parseWalFileName('00000000.history'), undefined);
});

test('segment names carry into the next log file after FF and back again', () => {
  assert.equal(segmentName(1, 0xff), '0000000100000000000000FF');
  assert.equal(segmentName(1, 0x100), '000000010000000100000000');
  assert.equal(segmentName(0x1f, 0x12345), '0000001F0000012300000045');
  // The highest position a 64-bit LSN reaches: log FFFFFFFF, segment FF.
  const last = 2 ** 40 - 1;
  assert.equal(segmentName(1, last), '00000001FFFFFFFF000000FF');
  for (const segment of [0, 1, 0xff, 0x100, 0x101, 0xffff, last]) {
    const parsed = parseWalFileName(segmentName(7, segment));
    assert.ok(parsed?.kind === 'segment');
    assert.equal(parsed.segment, segment, `segment ${segment}`);
  }
});

test('LSNs parse to exact 64-bit positions beyond 2^53 and format back in PostgreSQL form', () => {
  assert.equal(parseLsn('0/0'), 0n);
  assert.equal(parseLsn('0/3000028'), 0x3000028n);
  assert.equal(parseLsn('FFFFFFFF/FFFFFFFF'), 2n ** 64n - 1n);
  assert.equal(parseLsn('16/b374d848'), (0x16n << 32n) | 0xb374d848n);
  assert.equal(formatLsn(parseLsn('16/b374d848')), '16/B374D848');
  assert.equal(formatLsn((0x16n << 32n) | 0x1n), '16/1');
  for (const bad of ['', '0', '0/', '/0', '0/0/0', '123456789/0', '0/123456789', 'G/0', ' 0/0', '0x1/0']) {
    assert.throws(() => parseLsn(bad), RangeError, JSON.stringify(bad));
  }
});

test('the segment holding an LSN changes exactly at a 16 MiB boundary', () => {
  assert.equal(WAL_SEGMENT_BYTES, 16 * 1024 * 1024);
  assert.equal(segmentOfLsn('0/2FFFFFF'), 2);
  assert.equal(segmentOfLsn('0/3000000'), 3);
  assert.equal(segmentOfLsn('1/0'), 256, 'a log file holds 256 segments');
  assert.equal(segmentOfLsn('FFFFFFFF/FF000000'), 2 ** 40 - 1);
});

test('a backup stop LSN on a segment boundary ends in the previous segment (XLByteToPrevSeg), otherwise in its own', () => {
  assert.equal(segmentBeforeLsn('0/3000000'), 2);
  assert.equal(segmentBeforeLsn('0/3000001'), 3);
  assert.equal(segmentBeforeLsn('0/3000138'), 3);
  assert.equal(segmentBeforeLsn('1/0'), 255, 'the boundary between log files goes back to segment FF of the previous one');
  assert.equal(segmentName(1, segmentBeforeLsn('1/0')), '0000000100000000000000FF');
});
