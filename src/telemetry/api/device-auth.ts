import type { FastifyRequest } from 'fastify';
import { authenticateDevice } from '../devices/device-registry.js';
import { bearerToken } from '../devices/token.js';
import { HttpError } from './http-error.js';
import type { ServerContext } from './server-context.js';

/**
 * onRequest hook for device routes: authenticate before the body is read (an unknown caller
 * cannot make us parse a megabyte), then apply the device's rate limit. Failures are throttled
 * per client address before the database is asked (auth-throttle.ts).
 */
export function deviceAuth(context: ServerContext) {
  return async (request: FastifyRequest): Promise<void> => {
    const token = bearerToken(request.headers.authorization, 'device');
    const device = await context.authThrottle.authenticate(request, token, (t) => authenticateDevice(context.pool, t));
    if (!device)
      throw new HttpError('unauthorized', 'a valid device token is required (Authorization: Bearer pmsd_…)', {
        'www-authenticate': 'Bearer',
      });
    const wait = context.limiter.take(device.deviceId);
    if (wait > 0)
      throw new HttpError('rate-limited', 'this device is sending too fast: retry after the Retry-After delay', {
        'retry-after': String(wait),
      });
    request.device = device;
  };
}
