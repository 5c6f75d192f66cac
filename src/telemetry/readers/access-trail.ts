import type pg from 'pg';
import { PmsError } from '../../errors/catalogue.js';
import { SQLSTATE } from '../../postgres/sqlstate.js';
import { toDbError } from '../db/db-errors.js';
import type { AuthenticatedReader } from './reader-registry.js';

/**
 * What happened to a read, as kept in telemetry.reader_access: `ok` (answered, with the number
 * of rows), `forbidden` (the patient is outside the reader's scope), `unscoped` (a reader made
 * before scopes existed, refused until it is given one).
 */
export const ACCESS_OUTCOMES = ['ok', 'forbidden', 'unscoped'] as const;
export type AccessOutcome = (typeof ACCESS_OUTCOMES)[number];

/** The query as the reader asked it; kept in the trail so an auditor sees what was looked at. */
export interface ReadFilters {
  readonly code: string | null;
  readonly from: string | null;
  readonly to: string | null;
  readonly limit: number;
  /** Readings whose current version is entered-in-error are left out unless `include`. */
  readonly enteredInError: 'exclude' | 'include';
  /** Every version of each reading instead of the current one only. */
  readonly history: boolean;
}

/** Records a refused read (no rows). Answered reads are recorded by the read itself (patient-read.ts). */
export async function recordRefusal(
  db: pg.Pool,
  reader: AuthenticatedReader,
  patient: string,
  outcome: Exclude<AccessOutcome, 'ok'>,
  filters: ReadFilters,
): Promise<void> {
  try {
    await db.query(
      `INSERT INTO telemetry.reader_access (reader_id, reader_name, patient_nhs_number, outcome, rows_returned, filters)
       VALUES ($1, $2, $3, $4, 0, $5)`,
      [reader.readerId, reader.name, patient, outcome, JSON.stringify(filters)],
    );
  } catch (error) {
    throw toDbError(error, 'recording a refused read in the access trail');
  }
}

export interface AccessEntry {
  readonly accessId: string;
  readonly accessedAt: string;
  readonly reader: string;
  readonly patient: string;
  readonly outcome: AccessOutcome;
  readonly rowsReturned: number;
  readonly filters: ReadFilters;
  readonly recordedBy: string;
}

export interface AccessQuery {
  readonly reader?: string;
  readonly patient?: string;
  readonly outcome?: AccessOutcome;
  /** RFC 3339 instants, inclusive `since`, exclusive `until`. */
  readonly since?: string;
  readonly until?: string;
  readonly limit: number;
}

/**
 * The newest `limit` entries matching the query, newest first. Only the schema owner (the
 * login that runs migrate) may read the trail; the API's role may only append to it.
 */
export async function queryAccessTrail(db: pg.ClientBase, query: AccessQuery): Promise<AccessEntry[]> {
  try {
    const { rows } = await db.query<{
      access_id: string;
      accessed_at: Date;
      reader_name: string;
      patient_nhs_number: string;
      outcome: AccessOutcome;
      rows_returned: number;
      filters: ReadFilters;
      recorded_by: string;
    }>(
      `SELECT access_id, accessed_at, reader_name, patient_nhs_number, outcome, rows_returned, filters, recorded_by
         FROM telemetry.reader_access
        WHERE ($1::text IS NULL OR reader_name = $1) AND ($2::text IS NULL OR patient_nhs_number = $2)
          AND ($3::text IS NULL OR outcome = $3)
          AND ($4::timestamptz IS NULL OR accessed_at >= $4) AND ($5::timestamptz IS NULL OR accessed_at < $5)
        ORDER BY accessed_at DESC, access_id DESC
        LIMIT $6`,
      [query.reader ?? null, query.patient ?? null, query.outcome ?? null, query.since ?? null, query.until ?? null, query.limit],
    );
    return rows.map((r) => ({
      accessId: r.access_id,
      accessedAt: r.accessed_at.toISOString(),
      reader: r.reader_name,
      patient: r.patient_nhs_number,
      outcome: r.outcome,
      rowsReturned: r.rows_returned,
      filters: r.filters,
      recordedBy: r.recorded_by,
    }));
  } catch (error) {
    if ((error as { code?: unknown }).code === SQLSTATE.insufficientPrivilege) {
      throw new PmsError(
        'PMS_ERR_CONFIG',
        'POSTGRES_USER may not read the access trail (SQLSTATE 42501): run access-log as the telemetry schema owner, the login that runs migrate',
        { cause: error },
      );
    }
    throw toDbError(error, 'reading the access trail');
  }
}
