import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_DELAY_MS, type RetryErrorInfo, TRANSIENT_BASE_MS, backoffMs, s3RetryStrategy } from './s3-retry.js';

/** What the SDK's retry middleware hands the strategy: its classification and the error. */
function info(errorType: RetryErrorInfo['errorType'], name: string, status?: number): RetryErrorInfo {
  const error = Object.assign(new Error(name), { name, $metadata: status === undefined ? {} : { httpStatusCode: status } });
  return { errorType, error } as RetryErrorInfo;
}
const slowDown = info('THROTTLING', 'SlowDown', 503);
const headServiceUnavailable = info('TRANSIENT', '503', 503);
const reset = info('TRANSIENT', 'ECONNRESET');
const forbidden = info('CLIENT_ERROR', 'AccessDenied', 403);

/** The delays a strategy grants for a sequence of errors, until it refuses. */
async function delays(strategy: ReturnType<typeof s3RetryStrategy>, errors: readonly RetryErrorInfo[]) {
  let token = await strategy.acquireInitialRetryToken('');
  const granted: number[] = [];
  for (const error of errors) {
    try {
      token = await strategy.refreshRetryTokenForRetry(token, error);
    } catch {
      return { granted, refused: true };
    }
    granted.push(token.getRetryDelay());
  }
  return { granted, refused: false };
}

test('backoff doubles from its base, keeps half of each wait fixed and caps at MAX_DELAY_MS', () => {
  assert.equal(
    backoffMs(1000, 0, () => 0),
    500,
  );
  assert.equal(
    backoffMs(1000, 0, () => 0.999999),
    1000,
  );
  assert.equal(
    backoffMs(1000, 3, () => 0),
    4000,
  );
  assert.equal(
    backoffMs(1000, 10, () => 0.999999),
    MAX_DELAY_MS,
  );
  assert.equal(
    backoffMs(1000, 10, () => 0),
    MAX_DELAY_MS / 2,
  );
});

test('transient errors get maxAttempts attempts with waits of at least 125 then 250 ms (the SDK default waited 17-40 ms in all)', async () => {
  const strategy = s3RetryStrategy({ maxAttempts: 3, throttleBudgetMs: 120_000, random: () => 0 });
  const result = await delays(strategy, [reset, reset, reset]);
  assert.deepEqual(result, { granted: [TRANSIENT_BASE_MS / 2, TRANSIENT_BASE_MS], refused: true });
});

test('throttling is not bounded by maxAttempts but by the budget: a burst of 5 SlowDowns is ridden out with 3 attempts allowed', async () => {
  const strategy = s3RetryStrategy({ maxAttempts: 3, throttleBudgetMs: 120_000, random: () => 0 });
  const result = await delays(strategy, [slowDown, slowDown, slowDown, slowDown, slowDown]);
  assert.equal(result.refused, false);
  // 500, 1000, 2000, 4000 ms, then half of the 10 s cap.
  assert.deepEqual(result.granted, [500, 1000, 2000, 4000, 5000]);
});

test('throttling stops once the next wait would pass the budget (the request timeout)', async () => {
  const strategy = s3RetryStrategy({ maxAttempts: 3, throttleBudgetMs: 4_000, random: () => 0.999999 });
  const result = await delays(
    strategy,
    Array.from({ length: 10 }, () => slowDown),
  );
  // 1000 + 2000 = 3000 ms fit; the third wait (4000 ms) would not.
  assert.deepEqual(result, { granted: [1000, 2000], refused: true });
});

test("a HEAD's 503 without a body counts as throttling, and throttling does not use up the transient attempts", async () => {
  const strategy = s3RetryStrategy({ maxAttempts: 2, throttleBudgetMs: 120_000, random: () => 0 });
  const result = await delays(strategy, [headServiceUnavailable, slowDown, reset, reset]);
  assert.deepEqual(result, { granted: [500, 1000, TRANSIENT_BASE_MS / 2], refused: true });
});

test('a client error (403) is never retried', async () => {
  const strategy = s3RetryStrategy({ maxAttempts: 5, throttleBudgetMs: 120_000 });
  assert.deepEqual(await delays(strategy, [forbidden]), { granted: [], refused: true });
});
