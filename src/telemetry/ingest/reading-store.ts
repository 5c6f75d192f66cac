import type pg from 'pg';
import { SQLSTATE } from '../../postgres/sqlstate.js';
import { toDbError } from '../db/db-errors.js';
import type { AuthenticatedDevice } from '../devices/device-registry.js';
import { ensurePartitions, monthOf } from '../schema/partitions.js';
import type { ReadingStatus } from '../validation/reading-status.js';
import type { Rejection, ValidReading } from '../validation/reading-validator.js';
import { type StoredVersion, decideVersion } from './version-decision.js';

export interface QuarantineItem {
  readonly rejection: Rejection;
  /** The reading exactly as received, so a reviewer can replay or correct it. */
  readonly payload: unknown;
  /** Instead of payload: the bytes received, for a reading that could not be parsed or kept as jsonb. */
  readonly raw?: Buffer;
}

/** Per valid reading: stored as `version`, already stored as `version`, refused, or not stored (atomic batch refused). */
export type StoreOutcome =
  | { readonly kind: 'stored' | 'duplicate'; readonly version: number }
  | { readonly kind: 'conflict'; readonly rejection: Rejection }
  | { readonly kind: 'not-stored' };

export interface StoreResult {
  /** One per valid reading, in order. */
  readonly outcomes: readonly StoreOutcome[];
  readonly accepted: number;
  readonly duplicates: number;
}

/**
 * The fast path, one statement for a whole batch: data-modifying CTEs make the readings and the
 * quarantine rows commit together, in one round trip. Each reading id claims its version-1 key in
 * telemetry.reading_key (ON CONFLICT DO NOTHING, which waits for a racing claim to commit); only
 * the claimed readings are stored here. A reading id already stored, or sent twice in the batch,
 * goes to the versions path (#resolveExisting): a retry, a correction or a conflict. Claims are
 * taken in reading-id order so two batches sharing ids cannot deadlock.
 */
const INSERT_BATCH = `
WITH quarantined AS (
  INSERT INTO telemetry.quarantined_reading (device_id, patient_nhs_number, reading_id, reason, detail, source, payload, raw_payload)
  SELECT $1, $2, q.reading_id, q.reason, q.detail, $3, q.payload::jsonb, q.raw_payload
    FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $16::bytea[]) AS q(reading_id, reason, detail, payload, raw_payload)
), firsts AS (
  SELECT DISTINCT ON (reading_id) *
    FROM unnest($8::text[], $9::text[], $10::float8[], $11::text[], $12::float8[], $13::float8[], $14::timestamptz[], $15::int2[], $17::text[])
         WITH ORDINALITY AS v(reading_id, code, value, unit, systolic, diastolic, measured_at, offset_minutes, status, ord)
   ORDER BY reading_id, ord
), claimed AS (
  INSERT INTO telemetry.reading_key (device_id, reading_id, measured_at)
  SELECT $1, reading_id, measured_at FROM firsts ORDER BY reading_id
  ON CONFLICT DO NOTHING
  RETURNING reading_id
)
INSERT INTO telemetry.reading AS r
  (patient_nhs_number, device_id, reading_id, code, value, unit, systolic, diastolic, measured_at, measured_at_offset_minutes, status)
SELECT $2, $1, v.reading_id, v.code, v.value, v.unit, v.systolic, v.diastolic, v.measured_at, v.offset_minutes, v.status
  FROM firsts v JOIN claimed c USING (reading_id)
ON CONFLICT ON CONSTRAINT reading_device_reading_version_key DO NOTHING
RETURNING r.reading_id`;

/**
 * Every stored version of the given reading ids, beside the incoming instant, both in whole
 * microseconds (exact: extract returns numeric), so a resend is compared at the precision stored.
 */
const STORED_VERSIONS = `
SELECT v.ord::int AS ord, (extract(epoch FROM v.measured_at) * 1000000)::bigint::text AS incoming_us,
       k.version, r.status, r.code, r.value, r.unit, r.systolic, r.diastolic,
       (extract(epoch FROM r.measured_at) * 1000000)::bigint::text AS measured_us, r.measured_at_offset_minutes AS offset_minutes
  FROM unnest($2::text[], $3::timestamptz[]) WITH ORDINALITY AS v(reading_id, measured_at, ord)
  LEFT JOIN telemetry.reading_key k ON k.device_id = $1 AND k.reading_id = v.reading_id
  LEFT JOIN telemetry.reading r
    ON r.device_id = k.device_id AND r.reading_id = k.reading_id AND r.version = k.version AND r.measured_at = k.measured_at`;

const INSERT_VERSIONS = `
WITH v AS (
  SELECT * FROM unnest($3::text[], $4::int[], $5::text[], $6::float8[], $7::text[], $8::float8[], $9::float8[], $10::timestamptz[], $11::int2[], $12::text[])
       AS v(reading_id, version, code, value, unit, systolic, diastolic, measured_at, offset_minutes, status)
), keys AS (
  INSERT INTO telemetry.reading_key (device_id, reading_id, version, measured_at) SELECT $1, reading_id, version, measured_at FROM v
)
INSERT INTO telemetry.reading
  (patient_nhs_number, device_id, reading_id, version, code, value, unit, systolic, diastolic, measured_at, measured_at_offset_minutes, status)
SELECT $2, $1, reading_id, version, code, value, unit, systolic, diastolic, measured_at, offset_minutes, status FROM v`;

const INSERT_QUARANTINE = `
INSERT INTO telemetry.quarantined_reading (device_id, patient_nhs_number, reading_id, reason, detail, source, payload)
SELECT $1, $2, q.reading_id, q.reason, q.detail, $3, q.payload::jsonb FROM unnest($4::text[], $5::text[], $6::text[], $7::text[]) AS q(reading_id, reason, detail, payload)`;

/** Serialises the versions path per (device, reading id); the second key is hashtext of both. */
const VERSION_LOCK = 730500003;

interface Pending {
  readonly index: number;
  readonly reading: ValidReading;
}

interface Conflict extends Pending {
  readonly rejection: Rejection;
}

function summarise(outcomes: readonly StoreOutcome[]): StoreResult {
  let accepted = 0;
  let duplicates = 0;
  for (const o of outcomes) {
    if (o.kind === 'stored') accepted += 1;
    else if (o.kind === 'duplicate') duplicates += 1;
  }
  return { outcomes, accepted, duplicates };
}

function conflictItem(c: Conflict, payloads: readonly unknown[]): QuarantineItem {
  return { rejection: c.rejection, payload: payloads[c.index] ?? null };
}

export class ReadingStore {
  /** Months whose partition is known to exist, so the common case costs no extra round trip. */
  readonly #knownMonths = new Set<string>();

  constructor(private readonly pool: pg.Pool) {}

  /**
   * Stores a batch and acknowledges nothing before COMMIT. `payloads` are the readings as
   * received (parallel to `valid`), quarantined when a reading is refused as a conflict.
   * `atomic` (FHIR transactions): a conflict stores none of the valid readings; the conflicts
   * and `quarantine` are still quarantined.
   */
  async store(
    device: AuthenticatedDevice,
    source: 'v1' | 'fhir',
    valid: readonly ValidReading[],
    quarantine: readonly QuarantineItem[],
    options: { payloads?: readonly unknown[]; atomic?: boolean } = {},
  ): Promise<StoreResult> {
    if (valid.length === 0 && quarantine.length === 0) return { outcomes: [], accepted: 0, duplicates: 0 };
    try {
      await this.#ensureMonths(valid);
      if (options.atomic && valid.length > 0) return await this.#storeAtomic(device, source, valid, quarantine, options.payloads ?? []);
      const first = await this.#fastPath(this.pool, device, source, valid, quarantine, true);
      if (first.pending.length === 0) return summarise(first.outcomes);
      const client = await this.pool.connect();
      try {
        await client.query('BEGIN');
        const conflicts = await this.#resolveExisting(client, device, first.pending, first.outcomes);
        await this.#quarantineConflicts(client, device, source, conflicts, options.payloads ?? []);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
      return summarise(first.outcomes);
    } catch (error) {
      throw toDbError(error, 'storing readings');
    }
  }

  /** One transaction: the fast path, the versions path, and on any conflict a rollback of both. */
  async #storeAtomic(
    device: AuthenticatedDevice,
    source: 'v1' | 'fhir',
    valid: readonly ValidReading[],
    quarantine: readonly QuarantineItem[],
    payloads: readonly unknown[],
  ): Promise<StoreResult> {
    const client = await this.pool.connect();
    let conflicts: Conflict[];
    let outcomes: StoreOutcome[];
    try {
      await client.query('BEGIN');
      const first = await this.#fastPath(client, device, source, valid, quarantine, false);
      outcomes = first.outcomes;
      conflicts = first.pending.length > 0 ? await this.#resolveExisting(client, device, first.pending, outcomes) : [];
      await client.query(conflicts.length === 0 ? 'COMMIT' : 'ROLLBACK');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
    if (conflicts.length === 0) return summarise(outcomes);
    // Refused as a whole: quarantine what the rollback undid, plus the conflicts.
    const refused = new Set(conflicts.map((c) => c.index));
    await this.#fastPath(this.pool, device, source, [], [...quarantine, ...conflicts.map((c) => conflictItem(c, payloads))], false);
    return summarise(outcomes.map((o, i) => (refused.has(i) ? o : { kind: 'not-stored' })));
  }

  async #fastPath(
    db: pg.Pool | pg.ClientBase,
    device: AuthenticatedDevice,
    source: 'v1' | 'fhir',
    valid: readonly ValidReading[],
    quarantine: readonly QuarantineItem[],
    retryOnMissingPartition: boolean,
  ): Promise<{ outcomes: StoreOutcome[]; pending: Pending[] }> {
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
      valid.map((v) => v.status),
    ];
    let rows: { reading_id: string }[];
    try {
      rows = (await db.query<{ reading_id: string }>(INSERT_BATCH, params)).rows;
    } catch (error) {
      // A check violation means no partition for the row: one was dropped under us (retention); recreate, retry once.
      if (!retryOnMissingPartition || (error as { code?: unknown }).code !== SQLSTATE.checkViolation) throw error;
      this.#knownMonths.clear();
      await this.#ensureMonths(valid);
      rows = (await db.query<{ reading_id: string }>(INSERT_BATCH, params)).rows;
    }
    // Only the first occurrence of each id can have been stored here: it is version 1.
    const storedIds = new Set(rows.map((r) => r.reading_id));
    const outcomes: StoreOutcome[] = [];
    const pending: Pending[] = [];
    valid.forEach((reading, index) => {
      if (storedIds.delete(reading.readingId)) {
        outcomes.push({ kind: 'stored', version: 1 });
      } else {
        outcomes.push({ kind: 'not-stored' });
        pending.push({ index, reading });
      }
    });
    return { outcomes, pending };
  }

  /**
   * The versions path, inside the caller's transaction: locks each (device, reading id), reads
   * every stored version and decides, in batch order, duplicate, new version or conflict
   * (version-decision.ts); stores the new versions in one statement. Fills `outcomes` and
   * returns the conflicts.
   */
  async #resolveExisting(
    client: pg.ClientBase,
    device: AuthenticatedDevice,
    pending: readonly Pending[],
    outcomes: StoreOutcome[],
  ): Promise<Conflict[]> {
    const ids = [...new Set(pending.map((p) => p.reading.readingId))];
    // Sorted by the lock key itself so two batches take shared locks in one order.
    await client.query(
      `SELECT pg_advisory_xact_lock($1, h) FROM (SELECT DISTINCT hashtext($2 || chr(1) || id) AS h FROM unnest($3::text[]) AS id ORDER BY 1) AS l`,
      [VERSION_LOCK, device.deviceId, ids],
    );
    const { rows } = await client.query<{
      ord: number;
      incoming_us: string;
      version: number | null;
      status: ReadingStatus;
      code: string;
      value: number | null;
      unit: string;
      systolic: number | null;
      diastolic: number | null;
      measured_us: string;
      offset_minutes: number;
    }>(STORED_VERSIONS, [device.deviceId, pending.map((p) => p.reading.readingId), pending.map((p) => p.reading.measuredAt.text)]);
    const incomingMicros = new Map<number, string>();
    const versions = new Map<string, StoredVersion[]>();
    for (const row of rows) {
      const p = pending[row.ord - 1];
      if (!p) continue;
      incomingMicros.set(row.ord - 1, row.incoming_us);
      const list = versions.get(p.reading.readingId) ?? [];
      versions.set(p.reading.readingId, list);
      if (row.version === null || list.some((v) => v.version === row.version)) continue;
      list.push({
        version: row.version,
        status: row.status,
        code: row.code,
        value: row.value,
        unit: row.unit,
        systolic: row.systolic,
        diastolic: row.diastolic,
        measuredAtMicros: row.measured_us,
        offsetMinutes: row.offset_minutes,
      });
    }
    const toInsert: (ValidReading & { version: number })[] = [];
    const conflicts: Conflict[] = [];
    pending.forEach((p, i) => {
      const list = versions.get(p.reading.readingId) ?? [];
      const content = { ...p.reading, offsetMinutes: p.reading.measuredAt.offsetMinutes, measuredAtMicros: incomingMicros.get(i) ?? '' };
      const decision = decideVersion(list, content);
      if (decision.kind === 'duplicate') {
        outcomes[p.index] = { kind: 'duplicate', version: decision.version };
      } else if (decision.kind === 'new-version') {
        outcomes[p.index] = { kind: 'stored', version: decision.version };
        list.push({ ...content, version: decision.version });
        toInsert.push({ ...p.reading, version: decision.version });
      } else {
        const rejection: Rejection = { readingId: p.reading.readingId, reason: 'reading-conflict', detail: decision.detail };
        outcomes[p.index] = { kind: 'conflict', rejection };
        conflicts.push({ ...p, rejection });
      }
    });
    if (toInsert.length > 0) {
      await client.query(INSERT_VERSIONS, [
        device.deviceId,
        device.patientNhsNumber,
        toInsert.map((v) => v.readingId),
        toInsert.map((v) => v.version),
        toInsert.map((v) => v.code),
        toInsert.map((v) => v.value),
        toInsert.map((v) => v.unit),
        toInsert.map((v) => v.systolic),
        toInsert.map((v) => v.diastolic),
        toInsert.map((v) => v.measuredAt.text),
        toInsert.map((v) => v.measuredAt.offsetMinutes),
        toInsert.map((v) => v.status),
      ]);
    }
    return conflicts;
  }

  async #quarantineConflicts(
    client: pg.ClientBase,
    device: AuthenticatedDevice,
    source: 'v1' | 'fhir',
    conflicts: readonly Conflict[],
    payloads: readonly unknown[],
  ): Promise<void> {
    if (conflicts.length === 0) return;
    await client.query(INSERT_QUARANTINE, [
      device.deviceId,
      device.patientNhsNumber,
      source,
      conflicts.map((c) => c.rejection.readingId),
      conflicts.map((c) => c.rejection.reason),
      conflicts.map((c) => c.rejection.detail),
      conflicts.map((c) => JSON.stringify(payloads[c.index] ?? null)),
    ]);
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
