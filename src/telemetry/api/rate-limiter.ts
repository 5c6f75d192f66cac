/**
 * Per-device token bucket: `burst` requests at once, refilled at `requestsPerMinute`. Kept in
 * memory per replica (so the effective limit is per replica); enough to stop one runaway device
 * from starving the others, which is its job. Stale buckets are swept so memory stays bounded.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #perMs: number;

  constructor(
    private readonly requestsPerMinute: number,
    private readonly burst: number,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.#perMs = requestsPerMinute / 60_000;
  }

  /** Takes one request from the key's bucket; returns 0 when allowed, else seconds to wait. */
  take(key: string): number {
    const now = this.now();
    const bucket = this.#buckets.get(key) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + (now - bucket.at) * this.#perMs);
    bucket.at = now;
    this.#buckets.set(key, bucket);
    if (this.#buckets.size > 100_000) this.#sweep(now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.#perMs / 1000));
  }

  #sweep(now: number): void {
    const full = this.burst / this.#perMs;
    for (const [key, bucket] of this.#buckets) if (now - bucket.at > full) this.#buckets.delete(key);
  }
}
