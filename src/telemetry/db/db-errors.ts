import { PmsError } from '../../errors/catalogue.js';
import { SQLSTATE, SQLSTATE_PREFIX } from '../../postgres/sqlstate.js';

/**
 * Whether a failure means "the database is not there" (reply 503, retry later) rather than "the
 * statement is wrong". Errors the server reports carry a SQLSTATE; the connection classes are
 * 08 (connection exception), 53 (insufficient resources, e.g. too many connections) and 57P
 * (shutdown, crash recovery), and 25006 (a write on a standby: after a failover the old primary
 * serves read-only until the pool finds the new one). Errors without a SQLSTATE come from the socket or the pool
 * (refused, reset, terminated, timed out), which are unavailability too.
 */
export function isUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    return (
      code.startsWith(SQLSTATE_PREFIX.connectionException) ||
      code.startsWith(SQLSTATE_PREFIX.insufficientResources) ||
      code.startsWith(SQLSTATE_PREFIX.serverShutdown) ||
      code === SQLSTATE.queryCanceled ||
      code === SQLSTATE.readOnlySqlTransaction
    );
  }
  return true;
}

/**
 * Converts a driver error into a PmsError whose message holds no data values: PostgreSQL's own
 * messages and `detail` can quote row contents (NHS numbers), so only the SQLSTATE is kept.
 */
export function toDbError(error: unknown, doing: string): PmsError {
  if (error instanceof PmsError) return error;
  const sqlstate = (error as { code?: unknown } | null)?.code;
  const code = typeof sqlstate === 'string' ? sqlstate : undefined;
  if (isUnavailable(error)) {
    return new PmsError(
      'PMS_ERR_DB_UNAVAILABLE',
      `the database is unavailable while ${doing}${code ? ` (${code})` : ''}: it will be retried by the caller`,
      { cause: error, details: { sqlstate: code } },
    );
  }
  return new PmsError('PMS_ERR_DB_QUERY', `a database statement failed while ${doing} (SQLSTATE ${code})`, {
    cause: error,
    details: { sqlstate: code },
  });
}
