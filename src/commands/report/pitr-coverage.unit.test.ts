import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dailyCoverage, recoverablePoints } from './pitr-coverage.js';

const T0 = Date.UTC(2026, 10, 1);
const at = (hours: number): Date => new Date(T0 + hours * 3_600_000);
const seg = (segment: number, hours: number) => ({ segment, bytes: 100, at: at(hours) });

describe('PITR coverage per day (the measured RPO)', () => {
  test('points start at a base backup whose WAL is archived and follow the unbroken chain after it', () => {
    const segments = [seg(1, 1), seg(2, 2), seg(3, 3), seg(5, 5)];
    const points = recoverablePoints(segments, [{ startSegment: 1, stopSegment: 2, finishedAt: at(1.5) }]);
    // Ready once segment 2 is stored (2 h), then 3; 5 is after a gap (4 missing).
    assert.deepEqual(points, [at(2).getTime(), at(3).getTime()]);
  });

  test('a base backup whose own WAL is missing gives no point at all', () => {
    assert.deepEqual(recoverablePoints([seg(1, 1), seg(3, 3)], [{ startSegment: 1, stopSegment: 2, finishedAt: at(1) }]), []);
  });

  test('worst RPO of a day is the largest wait between points, including the wait to the end of the day', () => {
    const segments = [seg(1, 1), seg(2, 2), seg(3, 8), seg(4, 20)];
    const days = dailyCoverage(new Date(T0), 3, segments, [{ startSegment: 1, stopSegment: 1, finishedAt: at(1) }], at(30));
    const [first, second, third] = days;
    // Day 1: points at 1, 2, 8, 20; before 1 h nothing is recoverable; largest wait 20 - 8 = 12 h; end 24 - 20 = 4 h.
    assert.equal(first?.worstRpoSeconds, 12 * 3600);
    assert.equal(first?.uncoveredSeconds, 3600);
    assert.equal(first?.walSegments, 4);
    assert.equal(first?.recoverableTo, at(20).toISOString());
    // Day 2 until now (30 h): no new segment since 20 h, so 10 h of loss at "now".
    assert.equal(second?.worstRpoSeconds, 10 * 3600);
    assert.equal(second?.uncoveredSeconds, 0);
    assert.equal(second?.measured, true);
    // Day 3 is in the future.
    assert.equal(third?.measured, false);
    assert.equal(third?.worstRpoSeconds, null);
  });

  test('without point-in-time recovery set up every day is uncovered', () => {
    const days = dailyCoverage(new Date(T0), 2, [], [], at(48));
    assert.deepEqual(
      days.map((d) => [d.worstRpoSeconds, d.uncoveredSeconds]),
      [
        [null, 86400],
        [null, 86400],
      ],
    );
  });
});
