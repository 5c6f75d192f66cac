import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ReadingStatus } from '../validation/reading-status.js';
import { type ReadingContent, type StoredVersion, decideVersion } from './version-decision.js';

const content = (status: ReadingStatus, value: number, extra: Partial<ReadingContent> = {}): ReadingContent => ({
  status,
  code: '8867-4',
  value,
  unit: '/min',
  systolic: null,
  diastolic: null,
  measuredAtMicros: '1767225600000000',
  offsetMinutes: 0,
  ...extra,
});
const version = (n: number, c: ReadingContent): StoredVersion => ({ ...c, version: n });

test('identical to any stored version is a duplicate of that version, even an old one', () => {
  const stored = [version(1, content('final', 70)), version(2, content('amended', 99))];
  assert.deepEqual(decideVersion(stored, content('final', 70)), { kind: 'duplicate', version: 1 });
  assert.deepEqual(decideVersion(stored, content('amended', 99)), { kind: 'duplicate', version: 2 });
});

test('amended, corrected and entered-in-error add the next version after the highest', () => {
  const stored = [version(2, content('amended', 99)), version(1, content('final', 70))];
  for (const status of ['amended', 'corrected', 'entered-in-error'] as const) {
    assert.deepEqual(decideVersion(stored, content(status, 98)), { kind: 'new-version', version: 3 }, status);
  }
  assert.deepEqual(
    decideVersion(stored, content('entered-in-error', 99)),
    { kind: 'new-version', version: 3 },
    'the same value with another status is a change',
  );
});

test('after a preliminary, a final or another preliminary is a new version; after a final, a changed final is a conflict', () => {
  const preliminary = [version(1, content('preliminary', 88))];
  assert.deepEqual(decideVersion(preliminary, content('final', 86)), { kind: 'new-version', version: 2 });
  assert.deepEqual(decideVersion(preliminary, content('preliminary', 87)), { kind: 'new-version', version: 2 });
  const final = [version(1, content('final', 70))];
  for (const changed of [
    content('final', 71),
    content('preliminary', 70),
    content('final', 70, { measuredAtMicros: '1767225600000001' }),
  ]) {
    const decision = decideVersion(final, changed);
    assert.equal(decision.kind, 'conflict');
    assert.match(decision.kind === 'conflict' ? decision.detail : '', /version 1, status final.*amended or corrected/);
  }
  assert.equal(decideVersion([version(1, content('entered-in-error', 70))], content('final', 72)).kind, 'conflict');
});
