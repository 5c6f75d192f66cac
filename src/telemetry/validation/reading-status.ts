/**
 * The FHIR Observation.status values a reading may be stored with (docs/telemetry.md,
 * "Status and corrections"). `registered` (no result yet), `cancelled` (never measured) and
 * `unknown` carry no value a clinician could act on, so they are refused as invalid-status; a
 * stored reading is withdrawn with `entered-in-error`, never with `cancelled`.
 */
export const READING_STATUSES = ['preliminary', 'final', 'amended', 'corrected', 'entered-in-error'] as const;

export type ReadingStatus = (typeof READING_STATUSES)[number];

const STORED = new Set<string>(READING_STATUSES);

export function isReadingStatus(value: unknown): value is ReadingStatus {
  return typeof value === 'string' && STORED.has(value);
}

/** What a device says when it sends another version of a reading it already sent. */
export const CORRECTION_STATUSES: ReadonlySet<ReadingStatus> = new Set(['amended', 'corrected', 'entered-in-error']);

/** A result not yet final may be replaced by a later one (FHIR: preliminary results may be updated) without a correction status. */
export const OPEN_STATUSES: ReadonlySet<ReadingStatus> = new Set(['preliminary']);
