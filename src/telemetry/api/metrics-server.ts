import Fastify, { type FastifyInstance } from 'fastify';
import type { TelemetryMetrics } from './telemetry-metrics.js';

/**
 * GET /metrics on a listener of its own (TELEMETRY_METRICS_PORT), so the NetworkPolicy can admit
 * only Prometheus to it while the API port faces devices. Nothing else is served there.
 */
export async function buildMetricsServer(metrics: TelemetryMetrics): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, requestIdHeader: false, return503OnClosing: true, forceCloseConnections: true });
  app.get('/metrics', async (_request, reply) => {
    void reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  app.setNotFoundHandler((_request, reply) => {
    void reply.code(404).send({ error: { code: 'not-found', message: 'this port serves GET /metrics only' } });
  });
  await app.ready();
  return app;
}
