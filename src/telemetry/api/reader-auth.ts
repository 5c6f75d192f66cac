import type { FastifyRequest } from 'fastify';
import { bearerToken } from '../devices/token.js';
import { authenticateReader } from '../readers/reader-registry.js';
import { HttpError } from './http-error.js';
import type { ServerContext } from './server-context.js';

/**
 * onRequest hook for reader routes: authenticate (device tokens live in another table and never
 * match here), then take one request from the reader's own bucket, as devices do. The scope is
 * checked by the route, which knows the patient, together with the read.
 */
export function readerAuth(context: ServerContext) {
  return async (request: FastifyRequest): Promise<void> => {
    const token = bearerToken(request.headers.authorization, 'reader');
    // Failures are throttled per client address before the database is asked, as for devices.
    const reader = await context.authThrottle.authenticate(request, token, (t) => authenticateReader(context.pool, t));
    if (!reader)
      throw new HttpError('unauthorized', 'a valid reader token is required (Authorization: Bearer pmsr_…)', {
        'www-authenticate': 'Bearer',
      });
    const wait = context.readerLimiter.take(reader.readerId);
    if (wait > 0) {
      request.log.warn({ reader: reader.name, retryAfter: wait }, 'reader rate-limited');
      throw new HttpError('rate-limited', 'this reader is reading too fast: retry after the Retry-After delay', {
        'retry-after': String(wait),
      });
    }
    request.reader = reader;
  };
}
