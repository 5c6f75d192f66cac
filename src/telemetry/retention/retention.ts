import type pg from 'pg';
import { toDbError } from '../db/db-errors.js';
import { ensurePartitionsAround, listPartitions } from '../schema/partitions.js';

export interface RetentionPlan {
  readonly retentionDays: number | null;
  readonly cutoff: string | null;
  readonly created: readonly string[];
  readonly dropped: readonly { partition: string; from: string; to: string; rows: number }[];
  readonly kept: number;
  readonly dryRun: boolean;
}

export interface RetentionOptions {
  readonly retentionDays: number | undefined;
  readonly partitionsAheadMonths: number;
  readonly dryRun: boolean;
  readonly now?: Date;
  /** Called for every partition dropped (or that would be, in a dry run): the audit trail. */
  readonly onDrop?: (drop: { partition: string; from: string; to: string; rows: number; dryRun: boolean }) => void;
}

/**
 * Creates upcoming partitions and drops whole partitions whose newest possible reading is older
 * than the retention period. Without a retention period nothing is ever dropped: the NHS Records
 * Management Code keeps adult records for years after care ends, so deleting is opt-in.
 * Each drop is recorded in telemetry.retention_log in the same transaction as the DROP.
 */
export async function applyRetention(client: pg.ClientBase, options: RetentionOptions): Promise<RetentionPlan> {
  const now = options.now ?? new Date();
  try {
    const created = options.dryRun ? [] : await ensurePartitionsAround(client, now, options.partitionsAheadMonths);
    const partitions = await listPartitions(client);
    if (options.retentionDays === undefined) {
      return { retentionDays: null, cutoff: null, created, dropped: [], kept: partitions.length, dryRun: options.dryRun };
    }
    const cutoff = new Date(now.getTime() - options.retentionDays * 86_400_000);
    const expired = partitions.filter((p) => p.to.getTime() <= cutoff.getTime());
    const dropped: { partition: string; from: string; to: string; rows: number }[] = [];
    for (const part of expired) {
      const ident = `telemetry."${part.name.replace(/"/g, '""')}"`;
      await client.query('BEGIN');
      try {
        const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${ident}`);
        const count = Number(rows[0]?.n ?? 0);
        const drop = { partition: part.name, from: part.from.toISOString(), to: part.to.toISOString(), rows: count };
        if (!options.dryRun) {
          // A version in this partition may have superseded older versions of its reading stored
          // in a later month (a correction that moved measuredAt back): they go with it, or the
          // superseded value would resurface as current.
          await client.query(
            `WITH expiring AS (
               SELECT device_id, reading_id, version FROM telemetry.reading_key WHERE measured_at >= $1 AND measured_at < $2
             ), superseded AS (
               DELETE FROM telemetry.reading_key k USING expiring e
                WHERE k.device_id = e.device_id AND k.reading_id = e.reading_id AND k.version < e.version
                  AND NOT (k.measured_at >= $1 AND k.measured_at < $2)
               RETURNING k.device_id, k.reading_id, k.version, k.measured_at
             )
             DELETE FROM telemetry.reading r USING superseded s
              WHERE r.device_id = s.device_id AND r.reading_id = s.reading_id AND r.version = s.version AND r.measured_at = s.measured_at`,
            [part.from, part.to],
          );
          await client.query(`DROP TABLE ${ident}`);
          // Their resend keys go too: readings this old are refused as too old anyway.
          await client.query('DELETE FROM telemetry.reading_key WHERE measured_at >= $1 AND measured_at < $2', [part.from, part.to]);
          await client.query(
            'INSERT INTO telemetry.retention_log (partition_name, range_from, range_to, row_count, retention_days) VALUES ($1, $2, $3, $4, $5)',
            [part.name, part.from, part.to, count, options.retentionDays],
          );
        }
        await client.query(options.dryRun ? 'ROLLBACK' : 'COMMIT');
        options.onDrop?.({ ...drop, dryRun: options.dryRun });
        dropped.push(drop);
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    }
    return {
      retentionDays: options.retentionDays,
      cutoff: cutoff.toISOString(),
      created,
      dropped,
      kept: partitions.length - dropped.length,
      dryRun: options.dryRun,
    };
  } catch (error) {
    throw toDbError(error, 'applying retention');
  }
}
