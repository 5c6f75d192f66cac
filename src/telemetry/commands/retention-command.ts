import { pino } from 'pino';
import { loadTelemetryConfig } from '../../config/telemetry-config.js';
import { usingClient } from '../../postgres/connect.js';
import { applyRetention } from '../retention/retention.js';
import { printResult } from './output.js';

export async function runRetention(options: { dryRun?: boolean; json?: boolean }): Promise<void> {
  const config = loadTelemetryConfig(process.env);
  // Drops are logged as JSON on stderr (collected by the cluster's log pipeline) as well as in
  // telemetry.retention_log, so stdout stays the command's result.
  const log = pino({ name: 'pms-telemetry-retention' }, pino.destination(2));
  const plan = await usingClient(
    config.postgres,
    (client) =>
      applyRetention(client, {
        retentionDays: config.retentionDays,
        partitionsAheadMonths: config.partitionsAheadMonths,
        dryRun: options.dryRun === true,
        onDrop: (drop) =>
          log.warn(
            { event: drop.dryRun ? 'partition-would-drop' : 'partition-dropped', ...drop, retentionDays: config.retentionDays },
            drop.dryRun ? 'would drop partition (dry run)' : 'dropped partition',
          ),
      }),
    { applicationName: 'pms-telemetry retention' },
  );
  log.flush();
  const verb = plan.dryRun ? 'would drop' : 'dropped';
  const human =
    plan.retentionDays === null
      ? `TELEMETRY_RETENTION_DAYS is not set: nothing is ever dropped (${plan.kept} partitions kept); ensured ${plan.created.length} partitions`
      : `${verb} ${plan.dropped.length} partition(s) older than ${plan.retentionDays} days (before ${plan.cutoff}): ${plan.dropped.map((d) => `${d.partition} (${d.rows} rows)`).join(', ') || 'none'}; ${plan.kept} kept`;
  printResult(options.json, { ok: true, ...plan }, human);
}
