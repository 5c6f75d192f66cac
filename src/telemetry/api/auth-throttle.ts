import type { FastifyRequest } from 'fastify';
import { hashToken } from '../devices/token.js';
import { HttpError } from './http-error.js';

/**
 * Failed authentications a client address may make back-to-back, and per minute after that.
 * A device with the right token fails never; one with a wrong token fails on every request, so
 * ten tries tell an operator's typo from a guesser without costing a database lookup each.
 */
export const AUTH_FAILURE_BURST = 10;
export const AUTH_FAILURES_PER_MINUTE = 10;
/** How long a token found unknown or revoked is answered 401 from memory (it cannot become valid). */
export const NEGATIVE_CACHE_MS = 60_000;
const NEGATIVE_CACHE_ENTRIES = 10_000;
const ADDRESSES = 100_000;

/**
 * Throttles failed authentication per client address before any database lookup, and
 * remembers recently failed tokens, so unauthenticated traffic costs memory, not queries.
 * Per replica and in memory, like the per-device limiter. A token that once failed cannot
 * become valid later: tokens are random and shown only when registered, and a revoked one
 * stays revoked, so the negative cache never turns a valid device away.
 */
export class AuthThrottle {
  readonly #addresses = new Map<string, { tokens: number; at: number }>();
  readonly #unknownTokens = new Map<string, number>();
  readonly #perMs = AUTH_FAILURES_PER_MINUTE / 60_000;

  constructor(private readonly now: () => number = () => Date.now()) {}

  /**
   * Looks the token up unless the address has used up its failures (429, no lookup) or the
   * token failed recently (undefined, no lookup); a failure (undefined) is charged to the address.
   */
  async authenticate<T>(
    request: FastifyRequest,
    token: string | undefined,
    lookup: (token: string) => Promise<T | undefined>,
  ): Promise<T | undefined> {
    const address = request.ip;
    const now = this.now();
    const bucket = this.#refill(address, now);
    if (bucket.tokens < 1)
      throw new HttpError('rate-limited', 'too many failed authentications from this address: retry after the Retry-After delay', {
        'retry-after': String(Math.max(1, Math.ceil((1 - bucket.tokens) / this.#perMs / 1000))),
      });
    const key = token === undefined ? undefined : hashToken(token).toString('base64');
    const cachedUntil = key === undefined ? undefined : this.#unknownTokens.get(key);
    const found = key === undefined || (cachedUntil !== undefined && cachedUntil > now) ? undefined : await lookup(token as string);
    if (found !== undefined) return found;
    bucket.tokens -= 1;
    if (key !== undefined && (cachedUntil === undefined || cachedUntil <= now)) this.#remember(key, now);
    return undefined;
  }

  #refill(address: string, now: number): { tokens: number; at: number } {
    let bucket = this.#addresses.get(address);
    if (bucket === undefined) {
      if (this.#addresses.size >= ADDRESSES) this.#sweep(now);
      bucket = { tokens: AUTH_FAILURE_BURST, at: now };
      this.#addresses.set(address, bucket);
    } else {
      bucket.tokens = Math.min(AUTH_FAILURE_BURST, bucket.tokens + (now - bucket.at) * this.#perMs);
      bucket.at = now;
    }
    return bucket;
  }

  #remember(key: string, now: number): void {
    this.#unknownTokens.delete(key);
    this.#unknownTokens.set(key, now + NEGATIVE_CACHE_MS);
    // Maps iterate in insertion order: the first key is the oldest entry.
    if (this.#unknownTokens.size > NEGATIVE_CACHE_ENTRIES) this.#unknownTokens.delete(this.#unknownTokens.keys().next().value as string);
  }

  /** Drops addresses whose bucket has refilled: they hold nothing a new bucket would not. */
  #sweep(now: number): void {
    const full = AUTH_FAILURE_BURST / this.#perMs;
    for (const [address, bucket] of this.#addresses) if (now - bucket.at >= full) this.#addresses.delete(address);
    // Still full of fresh attackers: forget the oldest rather than grow without bound.
    for (const address of this.#addresses.keys()) {
      if (this.#addresses.size < ADDRESSES) break;
      this.#addresses.delete(address);
    }
  }
}
