import type { Writable } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type pg from 'pg';
import type { TelemetryConfig } from '../../config/telemetry-config.js';
import { isPmsError } from '../../errors/catalogue.js';
import { ReadingStore } from '../ingest/reading-store.js';
import { AuthThrottle } from './auth-throttle.js';
import { registerBatchBodyParsers } from './batch-body-parser.js';
import { HttpError } from './http-error.js';
import { buildMetricsServer } from './metrics-server.js';
import { RateLimiter } from './rate-limiter.js';
import { registerFhirBundleRoute } from './routes/fhir-bundle-route.js';
import { registerHealthRoutes } from './routes/health-routes.js';
import { registerPatientReadingsRoute } from './routes/patient-readings-route.js';
import { registerReadingsRoute } from './routes/readings-route.js';
import type { ServerContext } from './server-context.js';
import { createTelemetryMetrics } from './telemetry-metrics.js';

export interface ServerDeps {
  readonly config: TelemetryConfig;
  readonly pool: pg.Pool;
  /** Where JSON logs go (stdout in production; a capture stream in tests). */
  readonly logStream?: Writable;
  readonly now?: () => number;
}

/**
 * The ingest API as a Fastify instance (not listening: serve.ts or a test does that). Logs are
 * JSON with the route pattern, never the URL (it contains NHS numbers), and never headers.
 */
export async function buildServer(
  deps: ServerDeps,
): Promise<{ app: FastifyInstance; metricsApp: FastifyInstance; context: ServerContext }> {
  const { config, pool } = deps;
  const context: ServerContext = {
    config,
    pool,
    store: new ReadingStore(pool),
    metrics: createTelemetryMetrics(pool),
    limiter: new RateLimiter(config.rateLimit.requestsPerMinute, config.rateLimit.burst, deps.now),
    readerLimiter: new RateLimiter(config.readerRateLimit.requestsPerMinute, config.readerRateLimit.burst, deps.now),
    authThrottle: new AuthThrottle(deps.now),
    now: deps.now ?? (() => Date.now()),
  };
  const app = Fastify({
    bodyLimit: config.bodyLimitBytes,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    requestIdHeader: false,
    // request.ip (the failed-authentication throttle's key) from X-Forwarded-For only via these.
    trustProxy: config.trustedProxies.length > 0 ? [...config.trustedProxies] : false,
    logger: {
      level: config.logLevel,
      ...(deps.logStream ? { stream: deps.logStream } : {}),
      serializers: {
        req: (req) => ({ method: req.method, route: (req as unknown as FastifyRequest).routeOptions?.url ?? 'unmatched' }),
        res: (res) => ({ statusCode: res.statusCode }),
        err: (err) => safeError(err),
      },
    },
  });
  app.addHook('onResponse', async (request, reply) => {
    context.metrics.requests.inc({
      route: request.routeOptions.url ?? 'unmatched',
      method: request.method,
      status: String(reply.statusCode),
    });
  });

  app.setErrorHandler((error, request, reply) => {
    const http = toHttpError(error);
    if (http.status >= 500 && http.code !== 'database-unavailable') request.log.error({ err: error }, 'request failed');
    else if (http.code === 'database-unavailable') request.log.warn({ err: error }, 'database unavailable');
    void reply
      .code(http.status)
      .headers(http.headers)
      .send({ error: { code: http.code, message: http.message } });
  });
  app.setNotFoundHandler((_request, reply) => {
    void reply.code(404).send({ error: { code: 'not-found', message: 'no such route' } });
  });

  registerHealthRoutes(app, context);
  // The ingest routes get the raw body (batch-body-parser.ts) in a scope of their own.
  await app.register(async (ingest) => {
    registerBatchBodyParsers(ingest, config.bodyLimitBytes);
    registerReadingsRoute(ingest, context);
    registerFhirBundleRoute(ingest, context);
  });
  registerPatientReadingsRoute(app, context);
  const metricsApp = await buildMetricsServer(context.metrics);
  app.addHook('onClose', async () => metricsApp.close());
  await app.ready();
  return { app, metricsApp, context };
}

function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (isPmsError(error, 'PMS_ERR_DB_UNAVAILABLE'))
    return new HttpError('database-unavailable', 'the database is unavailable: nothing from this request was stored, retry later', {
      'retry-after': '5',
    });
  const fst = error as { code?: unknown; statusCode?: unknown };
  if (fst.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new HttpError('body-too-large', 'the body is larger than the limit');
  if (fst.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return new HttpError('unsupported-media-type', 'send Content-Type: application/json (or application/fhir+json)');
  if (typeof fst.statusCode === 'number' && fst.statusCode >= 400 && fst.statusCode < 500) {
    if (fst.statusCode === 413) return new HttpError('body-too-large', 'the body is larger than the limit');
    return new HttpError(
      fst.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || error instanceof SyntaxError || fst.code === 'FST_ERR_CTP_INVALID_JSON_BODY'
        ? 'malformed-json'
        : 'invalid-body',
      'the body is not valid JSON of the expected shape',
    );
  }
  return new HttpError('internal', 'an internal error occurred; nothing from this request was acknowledged');
}

/** Error fields safe to log: type and code only, plus our own messages (which hold no data). */
function safeError(error: Error & { code?: unknown }): { type: string; message: string; stack: string; code: unknown } {
  const ours = error instanceof HttpError || isPmsError(error);
  const sqlstate = isPmsError(error) ? error.details?.['sqlstate'] : undefined;
  return {
    type: error.name,
    code: error.code,
    message: ours ? error.message : '(not logged: may contain data)',
    stack: '',
    ...(sqlstate ? { sqlstate } : {}),
  };
}
