import type pg from 'pg';
import type { TelemetryConfig } from '../../config/telemetry-config.js';
import type { AuthenticatedDevice } from '../devices/device-registry.js';
import type { ReadingStore } from '../ingest/reading-store.js';
import type { AuthenticatedReader } from '../readers/reader-registry.js';
import type { AuthThrottle } from './auth-throttle.js';
import type { RateLimiter } from './rate-limiter.js';
import type { TelemetryMetrics } from './telemetry-metrics.js';

/** What every route needs, built once per server. */
export interface ServerContext {
  readonly config: TelemetryConfig;
  readonly pool: pg.Pool;
  readonly store: ReadingStore;
  readonly metrics: TelemetryMetrics;
  readonly limiter: RateLimiter;
  /** Readers have buckets of their own (keyed by reader id), sized by TELEMETRY_READER_RATE_LIMIT_*. */
  readonly readerLimiter: RateLimiter;
  readonly authThrottle: AuthThrottle;
  readonly now: () => number;
}

declare module 'fastify' {
  interface FastifyRequest {
    device?: AuthenticatedDevice;
    reader?: AuthenticatedReader;
  }
}
