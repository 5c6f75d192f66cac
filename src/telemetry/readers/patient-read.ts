import type pg from 'pg';
import { toDbError } from '../db/db-errors.js';
import type { ReadingStatus } from '../validation/reading-status.js';
import type { ReadFilters } from './access-trail.js';
import type { AuthenticatedReader } from './reader-registry.js';

export interface ReadingRow {
  device_id: string;
  reading_id: string;
  code: string;
  value: number | null;
  unit: string;
  systolic: number | null;
  diastolic: number | null;
  measured_at: Date;
  measured_at_offset_minutes: number;
  received_at: Date;
  version: number;
  status: ReadingStatus;
  /** Whether this is the reading's highest version (the one readers see by default). */
  current: boolean;
}

/** `allowed` false: the patient is outside the reader's scope (no rows; the refusal is in the trail). */
export interface PatientRead {
  readonly allowed: boolean;
  readonly rows: readonly ReadingRow[];
}

/**
 * One statement checks the scope, reads the rows and appends the trail row with their count.
 * Being one statement, the trail row commits with the read or neither happens: no reading
 * leaves the database unrecorded, and a failed trail insert fails the read. When the scope
 * check is false, the reading scan is skipped (a one-time filter) and a `forbidden` row is
 * appended instead. Served by the patient/code/time index and the reader_patient primary key.
 *
 * A reading's current version is its highest in telemetry.reading_key (one primary-key probe per
 * row, not one per partition). By default only current versions are returned, and not those
 * entered in error; `history` returns every version of the readings in range, and a withdrawn
 * reading's history is left out like the reading unless `enteredInError` is `include`.
 */
export async function readPatientReadings(
  db: pg.Pool,
  reader: AuthenticatedReader & { allPatients: boolean },
  patient: string,
  filters: ReadFilters,
): Promise<PatientRead> {
  let rows: (Partial<ReadingRow> & { allowed: boolean })[];
  try {
    ({ rows } = await db.query(
      `WITH scope AS (
         SELECT $6::boolean OR EXISTS (SELECT FROM telemetry.reader_patient WHERE reader_id = $7 AND patient_nhs_number = $1) AS allowed
       ), candidates AS (
         SELECT r.device_id, r.reading_id, r.version, r.status, r.code, r.value, r.unit, r.systolic, r.diastolic,
                r.measured_at, r.measured_at_offset_minutes, r.received_at,
                (SELECT max(k.version) FROM telemetry.reading_key k WHERE k.device_id = r.device_id AND k.reading_id = r.reading_id) AS current_version
           FROM telemetry.reading r
          WHERE (SELECT allowed FROM scope)
            AND patient_nhs_number = $1 AND ($2::text IS NULL OR code = $2)
            AND ($3::timestamptz IS NULL OR measured_at >= $3) AND ($4::timestamptz IS NULL OR measured_at < $4)
       ), hits AS (
         SELECT device_id, reading_id, version, status, code, value, unit, systolic, diastolic, measured_at, measured_at_offset_minutes,
                received_at, version >= coalesce(current_version, version) AS current
           FROM candidates c
          WHERE ($10::boolean OR version >= coalesce(current_version, version))
            AND CASE
                  WHEN $11::boolean THEN true
                  WHEN version >= coalesce(current_version, version) THEN status <> 'entered-in-error'
                  ELSE (SELECT cur.status FROM telemetry.reading_key k
                          JOIN telemetry.reading cur ON cur.device_id = k.device_id AND cur.reading_id = k.reading_id
                                                    AND cur.version = k.version AND cur.measured_at = k.measured_at
                         WHERE k.device_id = c.device_id AND k.reading_id = c.reading_id AND k.version = c.current_version) <> 'entered-in-error'
                END
          ORDER BY measured_at, code, device_id, reading_id, version
          LIMIT $5
       ), trail AS (
         INSERT INTO telemetry.reader_access (reader_id, reader_name, patient_nhs_number, outcome, rows_returned, filters)
         SELECT $7, $8, $1, CASE WHEN allowed THEN 'ok' ELSE 'forbidden' END, (SELECT count(*) FROM hits), $9::jsonb FROM scope
       )
       SELECT scope.allowed, hits.* FROM scope LEFT JOIN hits ON true
        ORDER BY hits.measured_at, hits.code, hits.device_id, hits.reading_id, hits.version`,
      [
        patient,
        filters.code,
        filters.from,
        filters.to,
        filters.limit,
        reader.allPatients,
        reader.readerId,
        reader.name,
        JSON.stringify(filters),
        filters.history,
        filters.enteredInError === 'include',
      ],
    ));
  } catch (error) {
    throw toDbError(error, 'reading a patient’s readings');
  }
  const allowed = rows[0]?.allowed === true;
  // The LEFT JOIN yields one row of NULLs when nothing matched.
  const hits = rows.filter((r): r is ReadingRow & { allowed: boolean } => r.reading_id != null);
  return { allowed, rows: hits };
}
