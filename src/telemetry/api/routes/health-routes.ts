import type { FastifyInstance } from 'fastify';
import { toDbError } from '../../db/db-errors.js';
import type { ServerContext } from '../server-context.js';

/** /healthz: the process is up. /readyz: the database answers. (/metrics has its own port: metrics-server.ts.) */
export function registerHealthRoutes(app: FastifyInstance, context: ServerContext): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async () => {
    try {
      await context.pool.query('SELECT 1');
    } catch (error) {
      throw toDbError(error, 'checking readiness');
    }
    return { status: 'ready' };
  });
}
