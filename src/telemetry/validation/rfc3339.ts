/** A timestamp as the device wrote it, with its UTC offset kept (the device's local time matters clinically). */
export interface DeviceTime {
  /** Milliseconds since the epoch (sub-millisecond digits are kept in `text`). */
  readonly epochMs: number;
  readonly offsetMinutes: number;
  /** The original text, passed to PostgreSQL so microseconds survive. */
  readonly text: string;
}

const PATTERN = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * RFC 3339 date-time with a mandatory offset. Date.parse alone is not used because it accepts
 * local times without an offset and rolls over impossible dates (Feb 30 → Mar 2).
 */
export function parseRfc3339(text: string): DeviceTime | undefined {
  const m = PATTERN.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const zone = m[8] ?? 'Z';
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined;
  if (day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return undefined;
  let offsetMinutes = 0;
  if (zone !== 'Z' && zone !== 'z') {
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(4, 6));
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (zone.startsWith('-') ? -1 : 1) * (oh * 60 + om);
  }
  // Whole milliseconds from the digits themselves: float arithmetic could round 0.29 s down.
  const millis = m[7] ? Number(`${m[7].slice(1)}00`.slice(0, 3)) : 0;
  const epochMs = Date.UTC(year, month - 1, day, hour, minute, second) + millis - offsetMinutes * 60_000;
  return { epochMs, offsetMinutes, text };
}

/** Formats an instant in the device's offset, e.g. 2025-03-01T09:30:00.000+01:00. */
export function formatWithOffset(instant: Date, offsetMinutes: number): string {
  const local = new Date(instant.getTime() + offsetMinutes * 60_000).toISOString().slice(0, -1);
  if (offsetMinutes === 0) return `${local}Z`;
  const abs = Math.abs(offsetMinutes);
  const sign = offsetMinutes < 0 ? '-' : '+';
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}
