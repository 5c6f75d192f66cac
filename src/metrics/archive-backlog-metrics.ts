import { Gauge, Registry } from 'prom-client';
import type { PushgatewayConfig } from '../config/metrics-config.js';
import type { ArchiveBacklog } from '../wal/archive-status.js';
import { METRIC } from './backup-metrics.js';
import { groupingFor, pushRegistry } from './pushgateway-client.js';

/** The archiving backlog as gauges (pushed by the background pusher under command="wal-push"). */
export function buildArchiveBacklogRegistry(backlog: ArchiveBacklog): Registry {
  const registry = new Registry();
  new Gauge({
    name: METRIC.walReadyFiles,
    help: 'WAL files PostgreSQL has finished and not yet seen archived (.ready in pg_wal/archive_status) when wal-push looked.',
    registers: [registry],
  }).set(backlog.readyFiles);
  new Gauge({
    name: METRIC.walOldestReady,
    help: 'Seconds the oldest .ready WAL file had waited for archiving when wal-push looked (0: none waiting).',
    registers: [registry],
  }).set(Math.round(backlog.oldestReadySeconds));
  return registry;
}

/**
 * Pushes the backlog gauges; never throws (monitoring trouble must not stop archiving). POST
 * replaces only these two families in the group, nothing else wal-push reports.
 */
export async function pushArchiveBacklog(gateway: PushgatewayConfig | undefined, backlog: ArchiveBacklog): Promise<string | undefined> {
  if (gateway === undefined) return undefined;
  try {
    await pushRegistry(
      gateway,
      groupingFor(gateway, 'wal-push'),
      buildArchiveBacklogRegistry(backlog),
      AbortSignal.timeout(gateway.timeoutMs),
    );
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
