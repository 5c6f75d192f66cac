import type { FastifyInstance } from 'fastify';
import { bundleResponse, outcome, parseBundle } from '../../fhir/bundle-mapper.js';
import { ingestBatch } from '../../ingest/ingest-batch.js';
import { splitBatch } from '../../ingest/split-batch.js';
import { deviceAuth } from '../device-auth.js';
import { HttpError } from '../http-error.js';
import type { ServerContext } from '../server-context.js';
import { recordReadings } from './record-readings.js';

/**
 * POST /fhir/Bundle: the same rows and rules as /v1/readings. A batch stores each valid entry;
 * a transaction is all-or-nothing (FHIR semantics): with any rejected entry nothing valid is
 * stored, the rejected entries are still quarantined, and the reply is 400 with the per-entry
 * statuses in an OperationOutcome-bearing response bundle.
 */
export function registerFhirBundleRoute(app: FastifyInstance, context: ServerContext): void {
  app.post('/fhir/Bundle', { onRequest: deviceAuth(context) }, async (request, reply) => {
    const device = request.device;
    if (!device) throw new HttpError('unauthorized', 'a valid device token is required');
    const bundle = parseBundle(splitBatch(request.body as Buffer, 'entry'), context.config.maxBatchReadings);
    const stop = context.metrics.batchSeconds.startTimer({ source: 'fhir' });
    const result = await ingestBatch(context.store, device, 'fhir', bundle.readings, {
      nowMs: context.now(),
      atomic: bundle.type === 'transaction',
    });
    stop();
    recordReadings(context.metrics, result);
    void reply.type('application/fhir+json');
    if (bundle.type === 'transaction' && result.rejected.length > 0) {
      void reply.code(400);
      return {
        ...outcome(
          'error',
          'invalid',
          `transaction not stored: ${result.rejected.length} entr${result.rejected.length === 1 ? 'y was' : 'ies were'} rejected`,
        ),
        issue: result.rejected.map((r) => ({
          severity: 'error',
          code: 'invalid',
          diagnostics: `${r.reason}: ${r.detail}`,
          expression: [`Bundle.entry[${r.index}]`],
        })),
      };
    }
    return bundleResponse(bundle.type, result.entries);
  });
}
