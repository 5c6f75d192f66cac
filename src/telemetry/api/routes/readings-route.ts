import type { FastifyInstance } from 'fastify';
import { ingestBatch } from '../../ingest/ingest-batch.js';
import { deviceAuth } from '../device-auth.js';
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
    const body = request.body as unknown;
    const readings = shapeOf(body, context.config.maxBatchReadings);
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

function shapeOf(body: unknown, max: number): unknown[] {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new HttpError('invalid-body', 'the body must be {"readings":[...]}');
  const extra = Object.keys(body).filter((k) => k !== 'readings');
  if (extra.length > 0) throw new HttpError('invalid-body', `unknown top-level field(s): ${extra.slice(0, 5).join(', ')}`);
  const readings = (body as { readings?: unknown }).readings;
  if (!Array.isArray(readings) || readings.length === 0) throw new HttpError('invalid-body', 'readings must be a non-empty array');
  if (readings.length > max) throw new HttpError('invalid-body', `a batch may hold at most ${max} readings`);
  return readings;
}
