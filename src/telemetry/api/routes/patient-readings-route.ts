import type { FastifyInstance, FastifyRequest } from 'fastify';
import { toDbError } from '../../db/db-errors.js';
import { bearerToken } from '../../devices/token.js';
import { authenticateReader } from '../../readers/reader-registry.js';
import { isValidNhsNumber } from '../../validation/nhs-number.js';
import { formatWithOffset, parseRfc3339 } from '../../validation/rfc3339.js';
import { BLOOD_PRESSURE, DIASTOLIC, SYSTOLIC, VITAL_SIGNS } from '../../validation/vital-signs.js';
import { HttpError } from '../http-error.js';
import type { ServerContext } from '../server-context.js';

interface ReadingRow {
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

/**
 * GET /v1/patients/:nhsNumber/readings for clinical systems, with a reader token only: device
 * tokens live in another table and never match here. Served by the patient/code/time index.
 */
export function registerPatientReadingsRoute(app: FastifyInstance, context: ServerContext): void {
  app.get('/v1/patients/:nhsNumber/readings', { onRequest: readerAuth(context) }, async (request) => {
    const { nhsNumber } = request.params as { nhsNumber: string };
    if (!isValidNhsNumber(nhsNumber)) throw new HttpError('invalid-query', 'the path must hold a valid 10-digit NHS number');
    const q = request.query as Record<string, unknown>;
    const code = optional(q['code']);
    if (code !== undefined && !VITAL_SIGNS.has(code))
      throw new HttpError('invalid-query', 'code must be a supported vital-sign LOINC code');
    const from = time(q['from'], 'from');
    const to = time(q['to'], 'to');
    const limitText = optional(q['limit']) ?? '100';
    const limit = /^[0-9]{1,4}$/.test(limitText) ? Number(limitText) : NaN;
    if (!(limit >= 1 && limit <= 1000)) throw new HttpError('invalid-query', 'limit must be a whole number from 1 to 1000');
    let rows: ReadingRow[];
    try {
      ({ rows } = await context.pool.query<ReadingRow>(
        `SELECT device_id, reading_id, code, value, unit, systolic, diastolic, measured_at, measured_at_offset_minutes, received_at
           FROM telemetry.reading
          WHERE patient_nhs_number = $1 AND ($2::text IS NULL OR code = $2)
            AND ($3::timestamptz IS NULL OR measured_at >= $3) AND ($4::timestamptz IS NULL OR measured_at < $4)
          ORDER BY measured_at, code, device_id, reading_id
          LIMIT $5`,
        [nhsNumber, code ?? null, from ?? null, to ?? null, limit],
      ));
    } catch (error) {
      throw toDbError(error, 'reading a patient’s readings');
    }
    return { readings: rows.map(present) };
  });
}

function present(row: ReadingRow): Record<string, unknown> {
  const base: Record<string, unknown> = {
    readingId: row.reading_id,
    deviceId: row.device_id,
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

function readerAuth(context: ServerContext) {
  return async (request: FastifyRequest): Promise<void> => {
    const token = bearerToken(request.headers.authorization, 'reader');
    const reader = token === undefined ? undefined : await authenticateReader(context.pool, token);
    if (!reader)
      throw new HttpError('unauthorized', 'a valid reader token is required (Authorization: Bearer pmsr_…)', {
        'www-authenticate': 'Bearer',
      });
    request.log.info({ reader: reader.name }, 'patient readings requested');
  };
}
