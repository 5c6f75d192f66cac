import type { Env } from './env-source.js';
import { type PostgresConfig, parsePostgres } from './postgres-config.js';
import { Problems, deepFreeze, throwIfProblems } from './problems.js';
import { SettingReader } from './setting-reader.js';
import { refuseUnknownVariables } from './unknown-variables.js';

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
  readonly metricsPort: number;
  /** Proxies whose X-Forwarded-For is believed; empty: the client is the connection's peer. */
  readonly trustedProxies: readonly string[];
  /** undefined = never drop partitions (the safe default; deletion is a deliberate setting). */
  readonly retentionDays: number | undefined;
  readonly partitionsAheadMonths: number;
  readonly rateLimit: RateLimitConfig;
  /** The same token bucket, per reader token. */
  readonly readerRateLimit: RateLimitConfig;
  readonly bodyLimitBytes: number;
  readonly maxBatchReadings: number;
  readonly poolMax: number;
  readonly statementTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

/**
 * Parses the pms-telemetry environment once; every problem is reported together
 * (PMS_ERR_CONFIG, exit 2) and the result is frozen. An unknown TELEMETRY_* or POSTGRES_*
 * name is a typo and is reported, not ignored (POSTGRES_* as pms-backup judges them: one table).
 */
export function loadTelemetryConfig(env: Env): TelemetryConfig {
  const p = new Problems();
  const settings = new SettingReader(env, p);
  refuseUnknownVariables(env, p, 'pms-telemetry', ['TELEMETRY_', 'POSTGRES_']);
  const config: TelemetryConfig = {
    // Every pms-telemetry command works on the database.
    postgres: parsePostgres(settings, p, { connects: true }),
    host: settings.get('TELEMETRY_HOST'),
    port: settings.get('TELEMETRY_PORT'),
    metricsPort: settings.get('TELEMETRY_METRICS_PORT'),
    trustedProxies: settings.get('TELEMETRY_TRUSTED_PROXIES') ?? [],
    retentionDays: settings.get('TELEMETRY_RETENTION_DAYS'),
    partitionsAheadMonths: settings.get('TELEMETRY_PARTITIONS_AHEAD_MONTHS'),
    rateLimit: {
      requestsPerMinute: settings.get('TELEMETRY_RATE_LIMIT_PER_MINUTE'),
      burst: settings.get('TELEMETRY_RATE_LIMIT_BURST'),
    },
    readerRateLimit: {
      requestsPerMinute: settings.get('TELEMETRY_READER_RATE_LIMIT_PER_MINUTE'),
      burst: settings.get('TELEMETRY_READER_RATE_LIMIT_BURST'),
    },
    bodyLimitBytes: settings.get('TELEMETRY_BODY_LIMIT_BYTES'),
    maxBatchReadings: settings.get('TELEMETRY_MAX_BATCH_READINGS'),
    poolMax: settings.get('TELEMETRY_POOL_MAX'),
    statementTimeoutMs: settings.get('TELEMETRY_STATEMENT_TIMEOUT_MS'),
    shutdownTimeoutMs: settings.get('TELEMETRY_SHUTDOWN_TIMEOUT_MS'),
    logLevel: settings.get('TELEMETRY_LOG_LEVEL'),
  };
  if (config.metricsPort === config.port)
    p.add(
      `TELEMETRY_METRICS_PORT=${config.metricsPort} is invalid: it must differ from TELEMETRY_PORT (the API port does not serve /metrics)`,
    );
  throwIfProblems(p);
  return deepFreeze(config);
}
