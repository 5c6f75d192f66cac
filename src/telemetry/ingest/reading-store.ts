import type pg from 'pg';
import { SQLSTATE } from '../../postgres/sqlstate.js';
import { toDbError } from '../db/db-errors.js';
import { ensurePartitions, monthOf } from '../schema/partitions.js';
import type { AuthenticatedDevice } from '../devices/device-registry.js';
import type { Rejection, ValidReading } from '../validation/reading-validator.js';

export interface QuarantineItem {
  readonly rejection: Rejection;
  /** The reading exactly as received, so a reviewer can replay or correct it. */
  readonly payload: unknown;
  /** Instead of payload: the bytes received, for a reading that could not be parsed or kept as jsonb. */
  readonly raw?: Buffer;
}

export interface StoreResult {
  /** Per valid reading, in order: true when this call stored it, false when it was already there. */
  readonly inserted: readonly boolean[];
  readonly accepted: number;
  readonly duplicates: number;
}

/**
 * Writes one batch in a single statement: data-modifying CTEs make the readings and the
 * quarantine rows commit together, in one round trip. The caller acknowledges only after this
 * resolves, i.e. after COMMIT, so an acknowledged reading is durably stored (with the server's
 * synchronous_commit). A resent reading finds its (device, reading id) already claimed in
 * telemetry.reading_key (ON CONFLICT DO NOTHING): it is counted as a duplicate, never stored
 * twice, whichever replica or connection races for it, even if its measuredAt changed.
 */
const INSERT_BATCH = `
WITH quarantined AS (
  INSERT INTO telemetry.quarantined_reading (device_id, patient_nhs_number, reading_id, reason, detail, source, payload, raw_payload)
  SELECT $1, $2, q.reading_id, q.reason, q.detail, $3, q.payload::jsonb, q.raw_payload
    FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $16::bytea[]) AS q(reading_id, reason, detail, payload, raw_payload)
), incoming AS (
  SELECT * FROM unnest($8::text[], $9::text[], $10::float8[], $11::text[], $12::float8[], $13::float8[], $14::timestamptz[], $15::int2[])
       AS v(reading_id, code, value, unit, systolic, diastolic, measured_at, offset_minutes)
), claimed AS (
  -- One claim per reading id: a resend, even with another measured_at, finds it taken.
  INSERT INTO telemetry.reading_key (device_id, reading_id, measured_at)
  SELECT DISTINCT ON (reading_id) $1, reading_id, measured_at FROM incoming ORDER BY reading_id, measured_at
  ON CONFLICT DO NOTHING
  RETURNING reading_id, measured_at
)
INSERT INTO telemetry.reading AS r
  (patient_nhs_number, device_id, reading_id, code, value, unit, systolic, diastolic, measured_at, measured_at_offset_minutes)
SELECT $2, $1, v.reading_id, v.code, v.value, v.unit, v.systolic, v.diastolic, v.measured_at, v.offset_minutes
  FROM incoming v JOIN claimed c ON c.reading_id = v.reading_id AND c.measured_at = v.measured_at
ON CONFLICT ON CONSTRAINT reading_device_reading_key DO NOTHING
RETURNING r.reading_id, r.measured_at`;

export class ReadingStore {
  /** Months whose partition is known to exist, so the common case costs no extra round trip. */
  readonly #knownMonths = new Set<string>();

  constructor(private readonly pool: pg.Pool) {}

  async store(
    device: AuthenticatedDevice,
    source: 'v1' | 'fhir',
    valid: readonly ValidReading[],
    quarantine: readonly QuarantineItem[],
  ): Promise<StoreResult> {
    if (valid.length === 0 && quarantine.length === 0) return { inserted: [], accepted: 0, duplicates: 0 };
    const params = [
      device.deviceId,
      device.patientNhsNumber,
      source,
      quarantine.map((q) => q.rejection.readingId),
      quarantine.map((q) => q.rejection.reason),
      quarantine.map((q) => q.rejection.detail),
      quarantine.map((q) => (q.raw ? null : JSON.stringify(q.payload ?? null))),
      valid.map((v) => v.readingId),
      valid.map((v) => v.code),
      valid.map((v) => v.value),
      valid.map((v) => v.unit),
      valid.map((v) => v.systolic),
      valid.map((v) => v.diastolic),
      valid.map((v) => v.measuredAt.text),
      valid.map((v) => v.measuredAt.offsetMinutes),
      quarantine.map((q) => q.raw ?? null),
    ];
    let rows: { reading_id: string; measured_at: Date }[];
    try {
      await this.#ensureMonths(valid);
      rows = (await this.pool.query<{ reading_id: string; measured_at: Date }>(INSERT_BATCH, params)).rows;
    } catch (error) {
      // A check violation here means no partition for the row: one was dropped under us (retention); recreate, retry once.
      if ((error as { code?: unknown }).code !== SQLSTATE.checkViolation) throw toDbError(error, 'storing readings');
      this.#knownMonths.clear();
      try {
        await this.#ensureMonths(valid);
        rows = (await this.pool.query<{ reading_id: string; measured_at: Date }>(INSERT_BATCH, params)).rows;
      } catch (second) {
        throw toDbError(second, 'storing readings');
      }
    }
    // Match returned keys back to the batch; a key sent twice in one batch is stored once.
    const stored = new Map<string, number>();
    for (const row of rows) {
      const key = `${row.reading_id}\u0000${row.measured_at.getTime()}`;
      stored.set(key, (stored.get(key) ?? 0) + 1);
    }
    const inserted = valid.map((v) => {
      const key = `${v.readingId}\u0000${v.measuredAt.epochMs}`;
      const left = stored.get(key) ?? 0;
      if (left > 0) stored.set(key, left - 1);
      return left > 0;
    });
    return { inserted, accepted: rows.length, duplicates: valid.length - rows.length };
  }

  async #ensureMonths(valid: readonly ValidReading[]): Promise<void> {
    const missing = new Set<string>();
    for (const v of valid) {
      const month = monthOf(v.measuredAt.epochMs);
      if (!this.#knownMonths.has(month)) missing.add(month);
    }
    if (missing.size === 0) return;
    await ensurePartitions(this.pool, [...missing]);
    for (const m of missing) this.#knownMonths.add(m);
  }
}
