import type { RejectionReason } from './rejection-reason.js';
import { READING_STATUSES, type ReadingStatus, isReadingStatus } from './reading-status.js';
import { type DeviceTime, parseRfc3339 } from './rfc3339.js';
import { BLOOD_PRESSURE, DIASTOLIC, SYSTOLIC, VITAL_SIGNS, inRange } from './vital-signs.js';

/** A reading that passed every rule, ready to be stored. */
export interface ValidReading {
  readonly readingId: string;
  readonly code: string;
  readonly value: number | null;
  readonly unit: string;
  readonly systolic: number | null;
  readonly diastolic: number | null;
  readonly measuredAt: DeviceTime;
  /** FHIR Observation.status; `final` when a /v1 reading does not say. */
  readonly status: ReadingStatus;
}

export interface Rejection {
  readonly readingId: string | null;
  readonly reason: RejectionReason;
  /** For the quarantine reviewer; never contains the patient's identifier. */
  readonly detail: string;
}

export type Validation = { readonly ok: true; readonly reading: ValidReading } | { readonly ok: false; readonly rejection: Rejection };

export interface ValidationContext {
  readonly nowMs: number;
  /** The patient bound to the authenticated device. */
  readonly patientNhsNumber: string;
}

export const MAX_FUTURE_MS = 5 * 60_000;
export const MAX_AGE_MS = 30 * 24 * 60 * 60_000;
const READING_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const FIELDS = new Set(['readingId', 'code', 'value', 'unit', 'measuredAt', 'components', 'patientId', 'status']);

/**
 * Applies every rule to one reading from a device. Anything wrong gives a rejection with a
 * stable reason rather than an exception, because a rejected reading is quarantined, not lost.
 */
export function validateReading(input: unknown, context: ValidationContext): Validation {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return reject(null, 'invalid-reading', 'a reading must be a JSON object');
  }
  const r = input as Record<string, unknown>;
  const readingId = typeof r['readingId'] === 'string' && READING_ID.test(r['readingId']) ? r['readingId'] : null;
  if (readingId === null) {
    return reject(null, 'invalid-reading-id', 'readingId must be 1-128 characters of letters, digits, . _ : -');
  }
  const unknown = Object.keys(r).filter((k) => !FIELDS.has(k));
  if (unknown.length > 0) return reject(readingId, 'unknown-field', `unknown field(s): ${unknown.slice(0, 5).map(shortName).join(', ')}`);
  // A device may only write its own patient's data; a payload naming anyone else is refused.
  if (r['patientId'] !== undefined && r['patientId'] !== context.patientNhsNumber) {
    return reject(readingId, 'patient-mismatch', 'patientId does not match the patient this device is registered to');
  }
  const status = r['status'] === undefined ? 'final' : r['status'];
  if (!isReadingStatus(status)) {
    return reject(
      readingId,
      'invalid-status',
      `status must be one of ${READING_STATUSES.join(', ')} (registered, cancelled and unknown carry no result to store; withdraw a stored reading with entered-in-error)`,
    );
  }
  const sign = typeof r['code'] === 'string' ? VITAL_SIGNS.get(r['code']) : undefined;
  if (!sign) return reject(readingId, 'unknown-code', 'code must be a LOINC code from the FHIR R4 vital-signs profile');
  if (r['unit'] !== sign.unit) return reject(readingId, 'wrong-unit', `code ${sign.code} requires unit ${sign.unit}`);

  let value: number | null = null;
  let systolic: number | null = null;
  let diastolic: number | null = null;
  if (sign.components) {
    if (r['value'] !== undefined && r['value'] !== null)
      return reject(readingId, 'invalid-value', `code ${sign.code} carries its values in components, not value`);
    const parsed = parseComponents(r['components'], sign.unit);
    if (typeof parsed === 'string') return reject(readingId, 'invalid-components', parsed);
    systolic = parsed.get(SYSTOLIC) ?? null;
    diastolic = parsed.get(DIASTOLIC) ?? null;
    for (const [code, range] of Object.entries(sign.components)) {
      const v = parsed.get(code);
      if (v === undefined) return reject(readingId, 'invalid-components', `component ${code} is required for ${sign.code}`);
      if (!inRange(v, range))
        return reject(readingId, 'implausible-value', `component ${code} must be between ${range.min} and ${range.max}`);
    }
    if (sign.code === BLOOD_PRESSURE && systolic !== null && diastolic !== null && systolic <= diastolic) {
      return reject(readingId, 'implausible-value', 'systolic must be greater than diastolic');
    }
  } else {
    if (r['components'] !== undefined) return reject(readingId, 'invalid-components', `code ${sign.code} takes a value, not components`);
    if (typeof r['value'] !== 'number' || !Number.isFinite(r['value'])) return reject(readingId, 'invalid-value', 'value must be a number');
    value = r['value'];
    const range = sign.range ?? { min: -Infinity, max: Infinity };
    if (!inRange(value, range)) {
      return reject(
        readingId,
        'implausible-value',
        `value must be ${range.integer ? 'a whole number ' : ''}between ${range.min} and ${range.max} ${sign.unit}`,
      );
    }
  }

  const measuredAt = typeof r['measuredAt'] === 'string' ? parseRfc3339(r['measuredAt']) : undefined;
  if (!measuredAt)
    return reject(
      readingId,
      'invalid-measured-at',
      'measuredAt must be an RFC 3339 date-time with an offset, e.g. 2025-03-01T09:30:00+01:00',
    );
  if (measuredAt.epochMs > context.nowMs + MAX_FUTURE_MS)
    return reject(readingId, 'measured-in-future', 'measuredAt is more than 5 minutes in the future: check the device clock');
  if (measuredAt.epochMs < context.nowMs - MAX_AGE_MS) return reject(readingId, 'measured-too-old', 'measuredAt is more than 30 days old');

  return { ok: true, reading: { readingId, code: sign.code, value, unit: sign.unit, systolic, diastolic, measuredAt, status } };
}

function parseComponents(input: unknown, unit: string): Map<string, number> | string {
  if (!Array.isArray(input) || input.length === 0) return 'components must be a non-empty array of {code, value, unit}';
  const found = new Map<string, number>();
  for (const c of input) {
    if (c === null || typeof c !== 'object' || Array.isArray(c)) return 'each component must be an object {code, value, unit}';
    const { code, value, unit: cUnit, ...rest } = c as Record<string, unknown>;
    if (Object.keys(rest).length > 0) return `unknown component field(s): ${Object.keys(rest).slice(0, 5).join(', ')}`;
    if (code !== SYSTOLIC && code !== DIASTOLIC) return `component code must be ${SYSTOLIC} (systolic) or ${DIASTOLIC} (diastolic)`;
    if (found.has(code)) return `component ${code} appears twice`;
    if (cUnit !== undefined && cUnit !== unit) return `component ${code} requires unit ${unit}`;
    if (typeof value !== 'number' || !Number.isFinite(value)) return `component ${code} value must be a number`;
    found.set(code, value);
  }
  return found;
}

/** A field name as the detail may quote it: the sender chose it, so keep it short and printable. */
export function shortName(name: string): string {
  const safe = name.replace(/[^\x20-\x7e]/g, '?');
  return safe.length > 40 ? `${safe.slice(0, 40)}…` : safe;
}

function reject(readingId: string | null, reason: RejectionReason, detail: string): Validation {
  return { ok: false, rejection: { readingId, reason, detail } };
}
