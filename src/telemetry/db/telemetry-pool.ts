import pg from 'pg';
import type { TelemetryConfig } from '../../config/telemetry-config.js';
import { endpointsOf, pinnedTo } from '../../config/postgres-config.js';
import { connectionError } from '../../postgres/connect.js';
import { allowsPlainFallback, pgClientConfig } from '../../postgres/connection-options.js';
import { PrimaryLocator, primaryClientClass } from '../../postgres/primary-client.js';

/**
 * A connection pool for pms-telemetry. libpq's prefer/allow fall back to plain TCP when the server
 * has no TLS; pg.Pool cannot, so the first connection decides and the pool is rebuilt plain.
 * Timeouts are set so a dead database turns into a quick 503, not a hung device. With several
 * POSTGRES_HOST servers every connection goes to the primary, found again after a failover
 * (postgres/primary-client.ts).
 */
export async function openTelemetryPool(config: TelemetryConfig, applicationName = 'pms-telemetry'): Promise<pg.Pool> {
  const base: pg.PoolConfig = {
    ...pgClientConfig(config.postgres, { applicationName }),
    max: config.poolMax,
    connectionTimeoutMillis: Math.min(5_000, config.statementTimeoutMs),
    idleTimeoutMillis: 30_000,
    statement_timeout: config.statementTimeoutMs,
    // Client-side bound for when the server stops answering without closing the socket.
    query_timeout: config.statementTimeoutMs + 2_000,
  };
  const tryPool = async (poolConfig: pg.PoolConfig): Promise<pg.Pool> => {
    const pool = new pg.Pool(withPrimarySearch(config, poolConfig, applicationName));
    // An idle client losing its server must not crash the process; the next query reports it.
    pool.on('error', () => undefined);
    try {
      const client = await pool.connect();
      client.release();
      return pool;
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw error;
    }
  };
  try {
    return await tryPool(base);
  } catch (error) {
    if (base.ssl && allowsPlainFallback(config.postgres) && /does not support SSL/i.test((error as Error).message)) {
      return tryPool({ ...base, ssl: false }).catch((second: unknown) => {
        throw connectionError(config.postgres, second);
      });
    }
    throw connectionError(config.postgres, error);
  }
}

function withPrimarySearch(config: TelemetryConfig, poolConfig: pg.PoolConfig, applicationName: string): pg.PoolConfig {
  if (endpointsOf(config.postgres).length === 1) return poolConfig;
  const locator = new PrimaryLocator(config.postgres, (endpoint) => ({
    ...pgClientConfig(pinnedTo(config.postgres, endpoint), { applicationName }),
    // A plain rebuild of the pool (prefer/allow) probes plain too.
    ssl: poolConfig.ssl,
    connectionTimeoutMillis: poolConfig.connectionTimeoutMillis,
  }));
  return { ...poolConfig, Client: primaryClientClass(locator) };
}

/** Scoped pool: always ended (kysely's using… helpers). */
export async function usingTelemetryPool<T>(config: TelemetryConfig, use: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const pool = await openTelemetryPool(config);
  try {
    return await use(pool);
  } finally {
    await pool.end().catch(() => undefined);
  }
}
