import type { Writable } from 'node:stream';
import type { TelemetryConfig } from '../../config/telemetry-config.js';
import { openTelemetryPool } from '../db/telemetry-pool.js';
import { assertSchemaCurrent } from '../schema/migrate.js';
import { ensurePartitionsAround } from '../schema/partitions.js';
import { toDbError } from '../db/db-errors.js';
import { buildServer } from './build-server.js';

export interface RunningServer {
  readonly port: number;
  readonly metricsPort: number;
  /** Stops accepting, lets in-flight requests finish, then closes the pool. */
  close(): Promise<void>;
}

/**
 * Starts the API: checks the schema is current, makes sure this month's and the coming months'
 * partitions exist, then listens. Refuses to start against an unmigrated database rather than
 * failing every request later.
 */
export async function startServe(config: TelemetryConfig, options: { logStream?: Writable } = {}): Promise<RunningServer> {
  const pool = await openTelemetryPool(config);
  try {
    await assertSchemaCurrent(pool);
    await ensurePartitionsAround(pool, new Date(), config.partitionsAheadMonths).catch((error: unknown) => {
      throw toDbError(error, 'creating upcoming partitions');
    });
    const { app, metricsApp } = await buildServer({ config, pool, ...(options.logStream ? { logStream: options.logStream } : {}) });
    try {
      await metricsApp.listen({ host: config.host, port: config.metricsPort });
      await app.listen({ host: config.host, port: config.port });
    } catch (error) {
      await app.close().catch(() => undefined);
      throw error;
    }
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const metricsAddress = metricsApp.server.address();
    const metricsPort = typeof metricsAddress === 'object' && metricsAddress ? metricsAddress.port : config.metricsPort;
    app.log.info({ port, metricsPort }, 'pms-telemetry listening');
    let closing: Promise<void> | undefined;
    return {
      port,
      metricsPort,
      close() {
        closing ??= (async () => {
          app.log.info('shutting down: draining in-flight requests');
          const timer = setTimeout(() => app.server.closeAllConnections(), config.shutdownTimeoutMs);
          try {
            await app.close();
          } finally {
            clearTimeout(timer);
            await pool.end().catch(() => undefined);
          }
          app.log.info('stopped');
        })();
        return closing;
      },
    };
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
}
