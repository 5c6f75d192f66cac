import type pg from 'pg';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface TelemetryMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly readings: Counter<'outcome' | 'reason'>;
  readonly batchSeconds: Histogram<'source'>;
}

/**
 * One registry per server (not prom-client's global), so tests and several servers in one
 * process do not share counters. Labels never carry patient or device identifiers: routes are
 * the pattern (/v1/patients/:nhsNumber/readings), not the URL.
 */
export function createTelemetryMetrics(pool: pg.Pool): TelemetryMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'pms_telemetry_' });
  const requests = new Counter({
    name: 'pms_telemetry_http_requests_total',
    help: 'HTTP requests by route pattern, method and status code',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const readings = new Counter({
    name: 'pms_telemetry_readings_total',
    help: 'Readings received, by outcome (accepted, duplicate, rejected) and rejection reason',
    labelNames: ['outcome', 'reason'] as const,
    registers: [registry],
  });
  const batchSeconds = new Histogram({
    name: 'pms_telemetry_batch_duration_seconds',
    help: 'Time to validate and durably store one batch of readings',
    labelNames: ['source'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  new Gauge({
    name: 'pms_telemetry_db_pool_connections',
    help: 'PostgreSQL pool connections by state (total, idle, waiting = requests queued for one)',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      this.set({ state: 'total' }, pool.totalCount);
      this.set({ state: 'idle' }, pool.idleCount);
      this.set({ state: 'waiting' }, pool.waitingCount);
    },
  });
  return { registry, requests, readings, batchSeconds };
}
