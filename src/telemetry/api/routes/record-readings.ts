import type { BatchOutcome } from '../../ingest/ingest-batch.js';
import type { TelemetryMetrics } from '../telemetry-metrics.js';

/** Counts a stored batch's readings by outcome and rejection reason. */
export function recordReadings(metrics: TelemetryMetrics, outcome: BatchOutcome): void {
  if (outcome.accepted > 0) metrics.readings.inc({ outcome: 'accepted', reason: '' }, outcome.accepted);
  if (outcome.duplicates > 0) metrics.readings.inc({ outcome: 'duplicate', reason: '' }, outcome.duplicates);
  for (const r of outcome.rejected) metrics.readings.inc({ outcome: 'rejected', reason: r.reason });
}
