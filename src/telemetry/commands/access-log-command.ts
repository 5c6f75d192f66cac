import { loadTelemetryConfig } from '../../config/telemetry-config.js';
import { PmsError } from '../../errors/catalogue.js';
import { usingClient } from '../../postgres/connect.js';
import { ACCESS_OUTCOMES, type AccessEntry, type AccessOutcome, queryAccessTrail } from '../readers/access-trail.js';
import { normaliseNhsNumber } from '../validation/nhs-number.js';
import { parseRfc3339 } from '../validation/rfc3339.js';
import { printResult } from './output.js';

export interface AccessLogOptions {
  reader?: string;
  patient?: string;
  outcome?: string;
  since?: string;
  until?: string;
  limit?: string;
  json?: boolean;
}

/** `pms-telemetry access-log`: who read whose readings, newest first, from telemetry.reader_access. */
export async function runAccessLog(options: AccessLogOptions): Promise<void> {
  const query = parseQuery(options);
  const config = loadTelemetryConfig(process.env);
  const entries = await usingClient(config.postgres, (client) => queryAccessTrail(client, query), {
    applicationName: 'pms-telemetry access-log',
  });
  const truncated = entries.length === query.limit;
  printResult(options.json, { entries, truncated }, human(entries, truncated, query.limit));
}

function parseQuery(options: AccessLogOptions) {
  const problems: string[] = [];
  let patient: string | undefined;
  if (options.patient !== undefined) {
    patient = normaliseNhsNumber(options.patient);
    // The value is not echoed: it is (meant to be) a patient identifier.
    if (patient === undefined) problems.push('--patient is not a valid NHS number (10 digits with a Modulus 11 check digit)');
  }
  if (options.outcome !== undefined && !(ACCESS_OUTCOMES as readonly string[]).includes(options.outcome)) {
    problems.push(`--outcome must be one of ${ACCESS_OUTCOMES.join(', ')}`);
  }
  const since = instant(options.since, '--since', problems);
  const until = instant(options.until, '--until', problems);
  const limitText = options.limit ?? '100';
  const limit = /^[0-9]{1,6}$/.test(limitText) ? Number(limitText) : NaN;
  if (!(limit >= 1 && limit <= 100_000)) problems.push('--limit must be a whole number from 1 to 100000');
  if (problems.length > 0) throw new PmsError('PMS_ERR_USAGE', problems.join('; '));
  return {
    ...(options.reader !== undefined ? { reader: options.reader } : {}),
    ...(patient !== undefined ? { patient } : {}),
    ...(options.outcome !== undefined ? { outcome: options.outcome as AccessOutcome } : {}),
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
    limit,
  };
}

/** An RFC 3339 date-time with an offset, or a calendar date (midnight UTC). */
function instant(text: string | undefined, flag: string, problems: string[]): string | undefined {
  if (text === undefined) return undefined;
  if (/^\d{4}-\d{2}-\d{2}$/.test(text) && parseRfc3339(`${text}T00:00:00Z`)) return `${text}T00:00:00Z`;
  if (parseRfc3339(text)) return text;
  problems.push(`${flag} must be a date (2025-03-01) or an RFC 3339 date-time with an offset (2025-03-01T09:30:00Z)`);
  return undefined;
}

function human(entries: readonly AccessEntry[], truncated: boolean, limit: number): string {
  if (entries.length === 0) return 'no reads recorded for this query';
  const header = ['TIME', 'READER', 'PATIENT', 'OUTCOME', 'ROWS'];
  const table = entries.map((e) => [e.accessedAt, e.reader, e.patient, e.outcome, String(e.rowsReturned)]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const footer = truncated ? `\n(newest ${limit} shown: narrow with --since/--until or raise --limit)` : '';
  return [line(header), ...table.map(line)].join('\n') + footer;
}
