import type pg from 'pg';
import { toDbError } from '../db/db-errors.js';
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
       ), hits AS (
         SELECT device_id, reading_id, code, value, unit, systolic, diastolic, measured_at, measured_at_offset_minutes, received_at
           FROM telemetry.reading
          WHERE (SELECT allowed FROM scope)
            AND patient_nhs_number = $1 AND ($2::text IS NULL OR code = $2)
            AND ($3::timestamptz IS NULL OR measured_at >= $3) AND ($4::timestamptz IS NULL OR measured_at < $4)
          ORDER BY measured_at, code, device_id, reading_id
          LIMIT $5
       ), trail AS (
         INSERT INTO telemetry.reader_access (reader_id, reader_name, patient_nhs_number, outcome, rows_returned, filters)
         SELECT $7, $8, $1, CASE WHEN allowed THEN 'ok' ELSE 'forbidden' END, (SELECT count(*) FROM hits), $9::jsonb FROM scope
       )
       SELECT scope.allowed, hits.* FROM scope LEFT JOIN hits ON true
        ORDER BY hits.measured_at, hits.code, hits.device_id, hits.reading_id`,
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
