import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatWithOffset, parseRfc3339 } from './rfc3339.js';

test('RFC 3339 date-times with Z or a numeric offset give the instant and keep the offset', () => {
  assert.deepEqual(parseRfc3339('2025-03-01T09:30:00+01:00'), {
    epochMs: Date.UTC(2025, 2, 1, 8, 30),
    offsetMinutes: 60,
    text: '2025-03-01T09:30:00+01:00',
  });
  assert.equal(parseRfc3339('2025-03-01T09:30:00.29Z')?.epochMs, Date.UTC(2025, 2, 1, 9, 30, 0, 290));
  assert.equal(parseRfc3339('2025-03-01T09:30:00.123456-05:30')?.offsetMinutes, -330);
});

test('times without an offset, impossible dates and other formats are refused', () => {
  for (const t of [
    '2025-03-01T09:30:00',
    '2025-02-30T09:30:00Z',
    '2025-13-01T00:00:00Z',
    '2025-03-01 09:30Z',
    '2025-03-01',
    '1740821400',
    '2025-03-01T24:00:00Z',
    '2025-03-01T09:30:00+24:00',
  ]) {
    assert.equal(parseRfc3339(t), undefined, t);
  }
});

test('an instant is formatted back in the device’s own offset', () => {
  assert.equal(formatWithOffset(new Date(Date.UTC(2025, 2, 1, 8, 30)), 60), '2025-03-01T09:30:00.000+01:00');
  assert.equal(formatWithOffset(new Date(Date.UTC(2025, 2, 1, 8, 30)), 0), '2025-03-01T08:30:00.000Z');
  assert.equal(formatWithOffset(new Date(Date.UTC(2025, 2, 1, 8, 30)), -330), '2025-03-01T03:00:00.000-05:30');
});
