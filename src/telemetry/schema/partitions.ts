import type pg from 'pg';

/** First day (UTC) of the month containing `instant`, as YYYY-MM-DD. */
export function monthOf(epochMs: number): string {
  const d = new Date(epochMs);
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}-01`;
}

export function addMonths(month: string, n: number): string {
  const [y, m] = month.split('-').map(Number) as [number, number];
  const d = new Date(Date.UTC(y, m - 1 + n, 1));
  return monthOf(d.getTime());
}

/** Creates (if missing) the partition for each month; idempotent and safe between replicas. */
export async function ensurePartitions(db: pg.Pool | pg.ClientBase, months: readonly string[]): Promise<string[]> {
  if (months.length === 0) return [];
  const { rows } = await db.query<{ part: string }>('SELECT telemetry.ensure_reading_partition(m) AS part FROM unnest($1::date[]) AS m', [
    months,
  ]);
  return rows.map((r) => r.part);
}

/**
 * The partitions a replica needs before taking traffic: last month (late data up to 30 days old
 * can fall in it), this month and `ahead` months to come.
 */
export async function ensurePartitionsAround(db: pg.Pool | pg.ClientBase, now: Date, ahead: number): Promise<string[]> {
  const current = monthOf(now.getTime());
  const months: string[] = [];
  for (let i = -1; i <= ahead; i += 1) months.push(addMonths(current, i));
  return ensurePartitions(db, months);
}

export interface PartitionInfo {
  readonly name: string;
  readonly from: Date;
  readonly to: Date;
}

/** Every partition of telemetry.reading with its bounds, oldest first. */
export async function listPartitions(db: pg.Pool | pg.ClientBase): Promise<PartitionInfo[]> {
  const { rows } = await db.query<{ name: string; bound: string }>(`
    SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'telemetry.reading'::regclass`);
  const parts: PartitionInfo[] = [];
  for (const row of rows) {
    const m = /FROM \('([^']+)'\) TO \('([^']+)'\)/.exec(row.bound);
    if (!m || !m[1] || !m[2]) continue; // DEFAULT or MINVALUE partitions are never dropped by age
    parts.push({ name: row.name, from: pgTimestamp(m[1]), to: pgTimestamp(m[2]) });
  }
  return parts.sort((a, b) => a.from.getTime() - b.from.getTime());
}

/** PostgreSQL prints bounds in the session time zone as "2025-01-01 01:00:00+01"; make it ISO. */
function pgTimestamp(text: string): Date {
  const iso = text
    .replace(' ', 'T')
    .replace(/([+-]\d{2})$/, '$1:00')
    .replace(/([+-]\d{2}:\d{2}):\d{2}$/, '$1');
  return new Date(iso);
}
