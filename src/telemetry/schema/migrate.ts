import { createHash } from 'node:crypto';
import type pg from 'pg';
import { PmsError } from '../../errors/catalogue.js';
import { toDbError } from '../db/db-errors.js';
import { ensurePartitionsAround } from './partitions.js';
import { LATEST_VERSION, MIGRATIONS, type Migration } from './migrations.js';

/** Session advisory lock key shared by every replica and `pms-telemetry migrate`. */
const MIGRATION_LOCK = 730500001;

export interface MigrateResult {
  readonly applied: readonly number[];
  readonly alreadyApplied: readonly number[];
  readonly version: number;
  readonly partitions: readonly string[];
}

export function checksum(migration: Migration): string {
  return createHash('sha256').update(migration.sql).digest('hex');
}

/**
 * Brings the schema to the latest version. Runs under a session advisory lock, so two replicas
 * starting together apply each migration once (the second waits, then finds nothing to do);
 * each migration runs in its own transaction, so a failure leaves the previous version intact.
 */
export async function migrate(client: pg.ClientBase, options: { partitionsAheadMonths: number; now?: Date }): Promise<MigrateResult> {
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
  } catch (error) {
    throw toDbError(error, 'waiting for the migration lock');
  }
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS telemetry;
      CREATE TABLE IF NOT EXISTS telemetry.schema_migration (
        version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(), applied_by text NOT NULL DEFAULT current_user)`);
    const { rows } = await client.query<{ version: number; checksum: string }>('SELECT version, checksum FROM telemetry.schema_migration');
    const done = new Map(rows.map((r) => [r.version, r.checksum]));
    const applied: number[] = [];
    const alreadyApplied: number[] = [];
    for (const migration of MIGRATIONS) {
      const recorded = done.get(migration.version);
      if (recorded !== undefined) {
        if (recorded !== checksum(migration)) {
          throw new PmsError(
            'PMS_ERR_SCHEMA',
            `migration ${migration.version} was changed after it was applied: restore its original SQL and add a new migration instead`,
          );
        }
        alreadyApplied.push(migration.version);
        continue;
      }
      await client.query('BEGIN');
      try {
        await client.query(migration.sql);
        await client.query('INSERT INTO telemetry.schema_migration (version, name, checksum) VALUES ($1, $2, $3)', [
          migration.version,
          migration.name,
          checksum(migration),
        ]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
      applied.push(migration.version);
    }
    const newer = rows.filter((r) => r.version > LATEST_VERSION).map((r) => r.version);
    if (newer.length > 0) {
      throw new PmsError(
        'PMS_ERR_SCHEMA',
        `the database has migration(s) ${newer.join(', ')} that this pms-telemetry does not know: upgrade pms-telemetry`,
      );
    }
    const partitions = await ensurePartitionsAround(client, options.now ?? new Date(), options.partitionsAheadMonths);
    return { applied, alreadyApplied, version: LATEST_VERSION, partitions };
  } catch (error) {
    throw toDbError(error, 'migrating the telemetry schema');
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
  }
}

/** Refuses to serve against a schema older or newer than this program. */
export async function assertSchemaCurrent(db: pg.Pool | pg.ClientBase): Promise<void> {
  let version: number | null;
  try {
    const exists = await db.query<{ present: boolean }>("SELECT to_regclass('telemetry.schema_migration') IS NOT NULL AS present");
    if (exists.rows[0]?.present) {
      const { rows } = await db.query<{ version: number | null }>('SELECT max(version) AS version FROM telemetry.schema_migration');
      version = rows[0]?.version ?? null;
    } else {
      version = null;
    }
  } catch (error) {
    throw toDbError(error, 'checking the schema version');
  }
  if (version !== LATEST_VERSION) {
    throw new PmsError(
      'PMS_ERR_SCHEMA',
      `the telemetry schema is at version ${version ?? 'none'} but this program needs ${LATEST_VERSION}: run pms-telemetry migrate`,
    );
  }
}
