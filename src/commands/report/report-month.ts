import { PmsError } from '../../errors/catalogue.js';

/** A calendar month in UTC: [start, end). */
export interface ReportMonth {
  /** YYYY-MM. */
  readonly name: string;
  readonly start: Date;
  readonly end: Date;
  readonly days: number;
}

/** `--month YYYY-MM` (default: the current UTC month), refused as a usage error when malformed. */
export function parseReportMonth(value: string | undefined, now = new Date()): ReportMonth {
  const text = value ?? now.toISOString().slice(0, 7);
  const match = /^(\d{4})-(\d{2})$/.exec(text);
  const year = Number(match?.[1]);
  const month = Number(match?.[2]);
  if (!match || month < 1 || month > 12 || year < 2000) {
    throw new PmsError(
      'PMS_ERR_USAGE',
      `--month ${JSON.stringify(text)} is not a month: use YYYY-MM, e.g. ${now.toISOString().slice(0, 7)}`,
    );
  }
  const start = new Date(Date.UTC(year, month - 1, 1));
  const end = new Date(Date.UTC(year, month, 1));
  return { name: text, start, end, days: Math.round((end.getTime() - start.getTime()) / 86_400_000) };
}

export function inMonth(month: ReportMonth, iso: string): boolean {
  const t = Date.parse(iso);
  return t >= month.start.getTime() && t < month.end.getTime();
}
