import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkContinuity } from './timeline-continuity.js';
import { segmentName } from './wal-file-name.js';

const tl1 = [1, 2, 3, 4].map((s) => segmentName(1, s));
const tl2 = [5, 6].map((s) => segmentName(2, s));

test('a failover in segment 5: timeline 1 through 4, 00000002.history, timeline 2 from 5 on is whole', () => {
  const report = checkContinuity(
    [...tl1, segmentName(1, 5) + '.partial', '00000002.history', ...tl2],
    segmentName(1, 2),
    new Map([[2, '0/5000100']]),
  );
  assert.deepEqual(report.problems, []);
  assert.deepEqual(
    report.timelines.map((t) => [t.timeline, t.first, t.last]),
    [
      [1, segmentName(1, 2), segmentName(1, 4)],
      [2, segmentName(2, 5), segmentName(2, 6)],
    ],
  );
});

test('the old timeline’s last full segment, the history file or a switch point that does not match are each reported', () => {
  const withoutLast = checkContinuity([...tl1.slice(0, 3), '00000002.history', ...tl2], segmentName(1, 1));
  assert.deepEqual(withoutLast.problems, [`${segmentName(1, 4)} is not archived`]);
  const withoutHistory = checkContinuity([...tl1, ...tl2], segmentName(1, 1));
  assert.deepEqual(withoutHistory.problems, ['00000002.history is not archived']);
  const wrongSwitch = checkContinuity([...tl1, '00000002.history', ...tl2], segmentName(1, 1), new Map([[2, '0/7000000']]));
  assert.equal(wrongSwitch.ok, false);
  const hole = checkContinuity([...tl1, '00000002.history', segmentName(2, 6)], segmentName(1, 1));
  assert.deepEqual(hole.problems, [`${segmentName(1, 5)} is not archived`]);
});

test('a large archive (250 000 segments, 4 TB of WAL) is checked without exceeding the call stack', () => {
  // Math.min(...set) threw "Maximum call stack size exceeded" from about 200 000 values (Node 20).
  const names = Array.from({ length: 250_000 }, (_, i) => segmentName(1, i + 1));
  const report = checkContinuity(names, segmentName(1, 1));
  assert.deepEqual(report.problems, []);
  assert.equal(report.timelines[0]?.last, segmentName(1, 250_000));
});
