import { z } from 'zod';
import type { Env } from './env-source.js';
import { type PostgresConfig, parsePostgres } from './postgres-config.js';
import { Problems, deepFreeze, portSchema, throwIfProblems } from './problems.js';

export interface RateLimitConfig {
  /** Sustained requests per device per minute (token-bucket refill rate). */
  readonly requestsPerMinute: number;
  /** Requests a device may send back-to-back after being quiet (bucket size). */
  readonly burst: number;
}

export interface TelemetryConfig {
  readonly postgres: PostgresConfig;
  readonly host: string;
  readonly port: number;
  /** undefined = never drop partitions (the safe default; deletion is a deliberate setting). */
  readonly retentionDays: number | undefined;
  readonly partitionsAheadMonths: number;
  readonly rateLimit: RateLimitConfig;
  readonly bodyLimitBytes: number;
  readonly maxBatchReadings: number;
  readonly poolMax: number;
  readonly statementTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Every TELEMETRY_* variable we read; any other is a typo and is reported, not ignored. */
const KNOWN = new Set([
  'TELEMETRY_HOST',
  'TELEMETRY_PORT',
  'TELEMETRY_RETENTION_DAYS',
  'TELEMETRY_PARTITIONS_AHEAD_MONTHS',
  'TELEMETRY_RATE_LIMIT_PER_MINUTE',
  'TELEMETRY_RATE_LIMIT_BURST',
  'TELEMETRY_BODY_LIMIT_BYTES',
  'TELEMETRY_MAX_BATCH_READINGS',
  'TELEMETRY_POOL_MAX',
  'TELEMETRY_STATEMENT_TIMEOUT_MS',
  'TELEMETRY_SHUTDOWN_TIMEOUT_MS',
  'TELEMETRY_LOG_LEVEL',
]);

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/**
 * Parses the pms-telemetry environment once; every problem is reported together
 * (PMS_ERR_CONFIG, exit 2) and the result is frozen.
 */
export function loadTelemetryConfig(env: Env): TelemetryConfig {
  const p = new Problems();
  for (const name of Object.keys(env)) {
    if (name.startsWith('TELEMETRY_') && !KNOWN.has(name))
      p.add(`${name} is not a pms-telemetry setting: check the spelling (see docs/telemetry.md)`);
  }
  // Readings up to 30 days old are accepted, so a shorter retention would drop data the moment it
  // was acknowledged. 36500 days is "a century", the sanity ceiling.
  const retentionRaw = env['TELEMETRY_RETENTION_DAYS'];
  let retentionDays: number | undefined;
  if (retentionRaw !== undefined && retentionRaw !== '' && retentionRaw !== 'never') {
    retentionDays = p.parse(
      env,
      'TELEMETRY_RETENTION_DAYS',
      int(31, 36500),
      undefined,
      'use a whole number of days from 31 to 36500, or never (the default)',
    );
  }
  const config: TelemetryConfig = {
    postgres: parsePostgres(env, p),
    host: env['TELEMETRY_HOST'] || '0.0.0.0',
    port: p.parse(env, 'TELEMETRY_PORT', portSchema, 8080, 'use a TCP port number 1-65535'),
    retentionDays,
    partitionsAheadMonths: p.parse(env, 'TELEMETRY_PARTITIONS_AHEAD_MONTHS', int(1, 24), 3, 'use a whole number of months from 1 to 24'),
    rateLimit: {
      requestsPerMinute: p.parse(
        env,
        'TELEMETRY_RATE_LIMIT_PER_MINUTE',
        int(1, 1_000_000),
        120,
        'use a whole number of requests per minute per device',
      ),
      burst: p.parse(env, 'TELEMETRY_RATE_LIMIT_BURST', int(1, 1_000_000), 20, 'use a whole number of requests'),
    },
    // 1 MiB: a batch of 1000 readings is about 150 KB, so this leaves room without inviting abuse.
    bodyLimitBytes: p.parse(env, 'TELEMETRY_BODY_LIMIT_BYTES', int(1024, 64 * 1024 * 1024), 1024 * 1024, 'use a number of bytes from 1024'),
    maxBatchReadings: p.parse(env, 'TELEMETRY_MAX_BATCH_READINGS', int(1, 10_000), 1000, 'use a whole number from 1 to 10000'),
    poolMax: p.parse(env, 'TELEMETRY_POOL_MAX', int(1, 200), 10, 'use a whole number of connections from 1 to 200'),
    statementTimeoutMs: p.parse(env, 'TELEMETRY_STATEMENT_TIMEOUT_MS', int(100, 600_000), 10_000, 'use milliseconds from 100 to 600000'),
    shutdownTimeoutMs: p.parse(
      env,
      'TELEMETRY_SHUTDOWN_TIMEOUT_MS',
      int(0, 600_000),
      25_000,
      'use milliseconds from 0 to 600000 (keep it below terminationGracePeriodSeconds)',
    ),
    logLevel: p.parse(env, 'TELEMETRY_LOG_LEVEL', z.enum(LOG_LEVELS), 'info', `use one of ${LOG_LEVELS.join(', ')}`),
  };
  throwIfProblems(p);
  return deepFreeze(config);
}
