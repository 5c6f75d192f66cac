import type pg from 'pg';
import { PmsError } from '../../errors/catalogue.js';
import { SQLSTATE } from '../../postgres/sqlstate.js';
import { toDbError } from '../db/db-errors.js';
import { hashToken, newToken } from '../devices/token.js';

export interface RegisteredReader {
  readonly name: string;
  /** Shown once; only its hash is stored. */
  readonly token: string;
}

/** Issues a token for a clinical system that reads patients' readings. */
export async function registerReader(db: pg.Pool | pg.ClientBase, name: string): Promise<RegisteredReader> {
  if (!/^[\x21-\x7e][\x20-\x7e]{0,199}$/.test(name)) {
    throw new PmsError('PMS_ERR_USAGE', '--name must be 1-200 printable ASCII characters');
  }
  const token = newToken('reader');
  try {
    await db.query('INSERT INTO telemetry.reader (name, token_hash) VALUES ($1, $2)', [name, hashToken(token)]);
  } catch (error) {
    if ((error as { code?: unknown }).code === SQLSTATE.uniqueViolation) {
      throw new PmsError('PMS_ERR_ALREADY_EXISTS', `reader ${name} is already registered: revoke it first or choose another name`);
    }
    throw toDbError(error, 'registering a reader');
  }
  return { name, token };
}

export async function revokeReader(db: pg.Pool | pg.ClientBase, name: string): Promise<{ name: string; revokedAt: string }> {
  let rows: { revoked_at: Date }[];
  try {
    ({ rows } = await db.query<{ revoked_at: Date }>(
      'UPDATE telemetry.reader SET revoked_at = coalesce(revoked_at, now()) WHERE name = $1 RETURNING revoked_at',
      [name],
    ));
  } catch (error) {
    throw toDbError(error, 'revoking a reader');
  }
  const row = rows[0];
  if (!row) throw new PmsError('PMS_ERR_NOT_FOUND', `reader ${name} is not registered`);
  return { name, revokedAt: row.revoked_at.toISOString() };
}

/** The active reader holding this token, or undefined. */
export async function authenticateReader(db: pg.Pool, token: string): Promise<{ name: string } | undefined> {
  try {
    const { rows } = await db.query<{ name: string }>('SELECT name FROM telemetry.reader WHERE token_hash = $1 AND revoked_at IS NULL', [
      hashToken(token),
    ]);
    return rows[0];
  } catch (error) {
    throw toDbError(error, 'authenticating a reader');
  }
}
