import type pg from 'pg';
import { PmsError } from '../../errors/catalogue.js';
import { SQLSTATE } from '../../postgres/sqlstate.js';
import { toDbError } from '../db/db-errors.js';
import { hashToken, newToken } from '../devices/token.js';
import type { ReaderScope } from './reader-scope.js';

export interface RegisteredReader {
  readonly name: string;
  /** Shown once; only its hash is stored. */
  readonly token: string;
  readonly scope: ReaderScope;
}

/**
 * An active reader as the API sees it. `allPatients` is null for a reader registered before
 * scopes existed (migration 3): it is refused until `reader scope` gives it one.
 */
export interface AuthenticatedReader {
  readonly readerId: string;
  readonly name: string;
  readonly allPatients: boolean | null;
}

type Db = pg.Pool | pg.ClientBase;

/** Issues a token for a clinical system that reads the readings of the patients in its scope. */
export async function registerReader(db: Db, name: string, scope: ReaderScope): Promise<RegisteredReader> {
  if (!/^[\x21-\x7e][\x20-\x7e]{0,199}$/.test(name)) {
    throw new PmsError('PMS_ERR_USAGE', '--name must be 1-200 printable ASCII characters');
  }
  const token = newToken('reader');
  await inTransaction(db, 'registering a reader', async (conn) => {
    let readerId: string;
    try {
      const { rows } = await conn.query<{ reader_id: string }>(
        'INSERT INTO telemetry.reader (name, token_hash, all_patients) VALUES ($1, $2, $3) RETURNING reader_id',
        [name, hashToken(token), scope.allPatients],
      );
      readerId = rows[0]?.reader_id ?? '';
    } catch (error) {
      if ((error as { code?: unknown }).code === SQLSTATE.uniqueViolation) {
        // Names are never reused, revoked or not, so a name in the access trail means one reader.
        throw new PmsError(
          'PMS_ERR_ALREADY_EXISTS',
          `reader ${name} already exists (names are never reused): choose another name, or change its scope with reader scope`,
        );
      }
      throw error;
    }
    await insertPatients(conn, readerId, scope);
  });
  return { name, token, scope };
}

/**
 * Replaces an active reader's scope (its token stays valid). This is also how a reader made
 * before scopes existed is allowed to read again.
 */
export async function setReaderScope(db: Db, name: string, scope: ReaderScope): Promise<{ name: string; scope: ReaderScope }> {
  await inTransaction(db, 'changing a reader’s scope', async (conn) => {
    const { rows } = await conn.query<{ reader_id: string }>(
      'UPDATE telemetry.reader SET all_patients = $2 WHERE name = $1 AND revoked_at IS NULL RETURNING reader_id',
      [name, scope.allPatients],
    );
    const readerId = rows[0]?.reader_id;
    if (readerId === undefined) throw new PmsError('PMS_ERR_NOT_FOUND', `reader ${name} is not registered or is revoked`);
    await conn.query('DELETE FROM telemetry.reader_patient WHERE reader_id = $1', [readerId]);
    await insertPatients(conn, readerId, scope);
  });
  return { name, scope };
}

export async function revokeReader(db: Db, name: string): Promise<{ name: string; revokedAt: string }> {
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

export interface ReaderListing {
  readonly name: string;
  readonly registeredAt: string;
  readonly revokedAt: string | null;
  /** 'unscoped' for a reader made before scopes existed (refused until `reader scope`). */
  readonly scope: ReaderScope | 'unscoped';
}

/** Every reader with its scope, so an operator can find the unscoped ones left by the upgrade. */
export async function listReaders(db: Db): Promise<ReaderListing[]> {
  try {
    const { rows } = await db.query<{
      name: string;
      registered_at: Date;
      revoked_at: Date | null;
      all_patients: boolean | null;
      patients: string[];
    }>(
      `SELECT r.name, r.registered_at, r.revoked_at, r.all_patients,
              coalesce(array_agg(p.patient_nhs_number ORDER BY p.patient_nhs_number) FILTER (WHERE p.patient_nhs_number IS NOT NULL), '{}') AS patients
         FROM telemetry.reader r LEFT JOIN telemetry.reader_patient p USING (reader_id)
        GROUP BY r.reader_id ORDER BY r.name`,
    );
    return rows.map((r) => ({
      name: r.name,
      registeredAt: r.registered_at.toISOString(),
      revokedAt: r.revoked_at?.toISOString() ?? null,
      scope: r.all_patients === null ? 'unscoped' : r.all_patients ? { allPatients: true } : { allPatients: false, patients: r.patients },
    }));
  } catch (error) {
    throw toDbError(error, 'listing readers');
  }
}

/** The active reader holding this token, or undefined. */
export async function authenticateReader(db: pg.Pool, token: string): Promise<AuthenticatedReader | undefined> {
  try {
    const { rows } = await db.query<{ reader_id: string; name: string; all_patients: boolean | null }>(
      'SELECT reader_id, name, all_patients FROM telemetry.reader WHERE token_hash = $1 AND revoked_at IS NULL',
      [hashToken(token)],
    );
    const row = rows[0];
    return row ? { readerId: row.reader_id, name: row.name, allPatients: row.all_patients } : undefined;
  } catch (error) {
    throw toDbError(error, 'authenticating a reader');
  }
}

async function insertPatients(db: pg.ClientBase, readerId: string, scope: ReaderScope): Promise<void> {
  if (scope.allPatients) return;
  await db.query(
    'INSERT INTO telemetry.reader_patient (reader_id, patient_nhs_number) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING',
    [readerId, scope.patients],
  );
}

/**
 * The reader row and its patients change together or not at all. A pool lends a client for the
 * transaction; a client is used as it is (its owner releases it).
 */
async function inTransaction(db: Db, doing: string, work: (conn: pg.ClientBase) => Promise<void>): Promise<void> {
  const lent = 'totalCount' in db ? await (db as pg.Pool).connect() : undefined;
  const conn: pg.ClientBase = lent ?? (db as pg.ClientBase);
  try {
    await conn.query('BEGIN');
    try {
      await work(conn);
      await conn.query('COMMIT');
    } catch (error) {
      await conn.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  } catch (error) {
    throw toDbError(error, doing);
  } finally {
    lent?.release();
  }
}
