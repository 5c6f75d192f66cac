import type { FastifyInstance } from 'fastify';
import { type ReadFilters, recordRefusal } from '../../readers/access-trail.js';
import { type ReadingRow, readPatientReadings } from '../../readers/patient-read.js';
import { isValidNhsNumber } from '../../validation/nhs-number.js';
import { formatWithOffset, parseRfc3339 } from '../../validation/rfc3339.js';
import { BLOOD_PRESSURE, DIASTOLIC, SYSTOLIC, VITAL_SIGNS } from '../../validation/vital-signs.js';
import { HttpError } from '../http-error.js';
import { readerAuth } from '../reader-auth.js';
import type { ServerContext } from '../server-context.js';

/**
 * GET /v1/patients/:nhsNumber/readings for clinical systems, with a reader token only. A reader
 * reads only the patients in its scope; every answered or refused read is appended to
 * telemetry.reader_access. Logs name the reader and the outcome, never the patient (the trail,
 * in the database, holds that).
 */
export function registerPatientReadingsRoute(app: FastifyInstance, context: ServerContext): void {
  app.get('/v1/patients/:nhsNumber/readings', { onRequest: readerAuth(context) }, async (request, reply) => {
    const reader = request.reader;
    if (!reader) throw new HttpError('internal', 'reader authentication did not run');
    const { nhsNumber } = request.params as { nhsNumber: string };
    if (!isValidNhsNumber(nhsNumber)) throw new HttpError('invalid-query', 'the path must hold a valid 10-digit NHS number');
    const filters = parseFilters(request.query as Record<string, unknown>);
    if (reader.allPatients === null) {
      await recordRefusal(context.pool, reader, nhsNumber, 'unscoped', filters);
      request.log.warn({ reader: reader.name, outcome: 'unscoped' }, 'patient readings refused: the reader has no scope');
      throw new HttpError(
        'reader-not-scoped',
        'this reader token was issued before reader scopes existed and reads nothing until an operator runs: pms-telemetry reader scope NAME --patient … | --all-patients',
      );
    }
    const read = await readPatientReadings(context.pool, { ...reader, allPatients: reader.allPatients }, nhsNumber, filters);
    if (!read.allowed) {
      request.log.warn({ reader: reader.name, outcome: 'forbidden' }, 'patient readings refused: the patient is not in the reader’s scope');
      throw new HttpError('patient-not-in-scope', 'this patient is not in the reader’s scope; the attempt has been recorded');
    }
    request.log.info({ reader: reader.name, outcome: 'ok', rows: read.rows.length }, 'patient readings read');
    void reply.header('cache-control', 'no-store');
    return { readings: read.rows.map((row) => present(row, filters.history)) };
  });
}

function parseFilters(q: Record<string, unknown>): ReadFilters {
  const code = optional(q['code']);
  if (code !== undefined && !VITAL_SIGNS.has(code)) throw new HttpError('invalid-query', 'code must be a supported vital-sign LOINC code');
  const from = time(q['from'], 'from');
  const to = time(q['to'], 'to');
  const limitText = optional(q['limit']) ?? '100';
  const limit = /^[0-9]{1,4}$/.test(limitText) ? Number(limitText) : NaN;
  if (!(limit >= 1 && limit <= 1000)) throw new HttpError('invalid-query', 'limit must be a whole number from 1 to 1000');
  const enteredInError = optional(q['enteredInError']) ?? 'exclude';
  if (enteredInError !== 'exclude' && enteredInError !== 'include')
    throw new HttpError('invalid-query', 'enteredInError must be exclude (the default) or include');
  const history = optional(q['history']) ?? 'false';
  if (history !== 'true' && history !== 'false') throw new HttpError('invalid-query', 'history must be true or false');
  return { code: code ?? null, from: from ?? null, to: to ?? null, limit, enteredInError, history: history === 'true' };
}

function present(row: ReadingRow, history: boolean): Record<string, unknown> {
  const base: Record<string, unknown> = {
    readingId: row.reading_id,
    deviceId: row.device_id,
    // FHIR Observation.status and the version: a clinician must tell preliminary from final, and an amended value from the first one.
    status: row.status,
    version: row.version,
    ...(history ? { current: row.current } : {}),
    code: row.code,
    unit: row.unit,
    measuredAt: formatWithOffset(row.measured_at, row.measured_at_offset_minutes),
    receivedAt: row.received_at.toISOString(),
  };
  if (row.code === BLOOD_PRESSURE) {
    base['components'] = [
      { code: SYSTOLIC, value: row.systolic, unit: row.unit },
      { code: DIASTOLIC, value: row.diastolic, unit: row.unit },
    ];
  } else {
    base['value'] = row.value;
  }
  return base;
}

function optional(value: unknown): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new HttpError('invalid-query', 'each query parameter may appear once');
  return value;
}

function time(value: unknown, name: string): string | undefined {
  const text = optional(value);
  if (text === undefined) return undefined;
  if (!parseRfc3339(text)) throw new HttpError('invalid-query', `${name} must be an RFC 3339 date-time with an offset`);
  return text;
}
