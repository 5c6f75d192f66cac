import type { FastifyInstance } from 'fastify';
import { PreRejected, ingestBatch } from '../../ingest/ingest-batch.js';
import { type SplitBatch, splitBatch } from '../../ingest/split-batch.js';
import { deviceAuth } from '../device-auth.js';
import { shortName } from '../../validation/reading-validator.js';
import { HttpError } from '../http-error.js';
import type { ServerContext } from '../server-context.js';
import { recordReadings } from './record-readings.js';

/**
 * POST /v1/readings. The reply is sent only after the batch has committed, so 200 means every
 * accepted reading is durably stored and every rejected one is in quarantine.
 */
export function registerReadingsRoute(app: FastifyInstance, context: ServerContext): void {
  app.post('/v1/readings', { onRequest: deviceAuth(context) }, async (request) => {
    const device = request.device;
    if (!device) throw new HttpError('unauthorized', 'a valid device token is required');
    const readings = shapeOf(splitBatch(request.body as Buffer, 'readings'), context.config.maxBatchReadings);
    const stop = context.metrics.batchSeconds.startTimer({ source: 'v1' });
    const outcome = await ingestBatch(context.store, device, 'v1', readings, { nowMs: context.now() });
    stop();
    recordReadings(context.metrics, outcome);
    return {
      accepted: outcome.accepted,
      duplicates: outcome.duplicates,
      rejected: outcome.rejected.map((r) => ({ index: r.index, readingId: r.readingId, reason: r.reason, detail: r.detail })),
    };
  });
}

/** The readings of a `{"readings":[...]}` body; a reading that could not be parsed is rejected alone. */
function shapeOf(split: SplitBatch, max: number): unknown[] {
  const body = split.envelope;
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new HttpError('invalid-body', 'the body must be {"readings":[...]}');
  const extra = Object.keys(body).filter((k) => k !== 'readings');
  // Names are echoed to help the developer, cut short: they are the sender's bytes.
  if (extra.length > 0) throw new HttpError('invalid-body', `unknown top-level field(s): ${extra.slice(0, 5).map(shortName).join(', ')}`);
  const readings = split.items;
  if (!Array.isArray((body as { readings?: unknown }).readings) || readings === undefined || readings.length === 0)
    throw new HttpError('invalid-body', 'readings must be a non-empty array');
  if (readings.length > max) throw new HttpError('invalid-body', `a batch may hold at most ${max} readings`);
  return readings.map((item) =>
    item.ok ? item.value : new PreRejected({ readingId: null, reason: item.reason, detail: item.detail }, null, item.raw),
  );
}
