import type pg from 'pg';
import type { PostgresConfig } from '../config/postgres-config.js';
import { PmsError } from '../errors/catalogue.js';
import { connect, quoteIdent } from './connect.js';

export interface TableRef {
  readonly schema: string;
  readonly name: string;
}

export interface ExportedSnapshot {
  readonly snapshotId: string;
  readonly serverVersion: string;
  readonly serverVersionNum: number;
  /** Row count of every table pg_dump will dump, as of the snapshot. */
  countRows(signal?: AbortSignal): Promise<CountedTable[]>;
  /** Ends the transaction; the snapshot stops being importable. */
  release(): Promise<void>;
}

/**
 * Tables whose data pg_dump writes: ordinary tables and leaf partitions (a partitioned parent
 * holds no rows of its own), outside system schemas, excluding tables owned by extensions.
 */
export const DUMPED_TABLES_SQL = `
  SELECT n.nspname AS schema, c.relname AS name,
         (SELECT pn.nspname || '.' || p.relname FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
            JOIN pg_namespace pn ON pn.oid = p.relnamespace WHERE i.inhrelid = c.oid AND p.relkind = 'p' LIMIT 1) AS parent
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  ORDER BY 1, 2`;

export interface CountedTable extends TableRef {
  readonly rows: number;
  readonly partitionOf?: string;
}

export async function countTableRows(client: pg.Client, signal?: AbortSignal): Promise<CountedTable[]> {
  const tables = (await client.query<{ schema: string; name: string; parent: string | null }>(DUMPED_TABLES_SQL)).rows;
  const counted: CountedTable[] = [];
  for (const table of tables) {
    if (signal?.aborted) throw new PmsError('PMS_ERR_ABORTED', 'row counting was cancelled');
    const result = await client
      .query<{ n: string }>(`SELECT count(*)::text AS n FROM ONLY ${quoteIdent(table.schema)}.${quoteIdent(table.name)}`)
      .catch((error: unknown) => {
        // A server that dies mid-backup shows up here as a bare driver error: say what happened.
        throw new PmsError(
          'PMS_ERR_DB_UNAVAILABLE',
          `lost PostgreSQL while counting the rows of ${table.schema}.${table.name} (${(error as Error).message}): the backup was abandoned`,
          { cause: error },
        );
      });
    counted.push({
      schema: table.schema,
      name: table.name,
      rows: Number(result.rows[0]?.n ?? 0),
      ...(table.parent ? { partitionOf: table.parent } : {}),
    });
  }
  return counted;
}

/**
 * Opens a REPEATABLE READ transaction and exports its snapshot, so pg_dump (--snapshot) and the
 * manifest's row counts describe exactly the same instant.
 */
export async function exportSnapshot(config: PostgresConfig): Promise<ExportedSnapshot> {
  const client = await connect(config, { applicationName: 'pms-backup' });
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const snapshot = await client.query<{ id: string; version: string; num: string }>(
      `SELECT pg_export_snapshot() AS id, current_setting('server_version') AS version, current_setting('server_version_num') AS num`,
    );
    const row = snapshot.rows[0];
    if (!row) throw new PmsError('PMS_ERR_DB_QUERY', 'pg_export_snapshot returned nothing');
    return {
      snapshotId: row.id,
      serverVersion: row.version,
      serverVersionNum: Number(row.num),
      countRows: (signal) => countTableRows(client, signal),
      release: async () => {
        await client.query('COMMIT').catch(() => undefined);
        await client.end().catch(() => undefined);
      },
    };
  } catch (error) {
    await client.end().catch(() => undefined);
    if (error instanceof PmsError) throw error;
    throw new PmsError('PMS_ERR_DB_QUERY', `could not start a consistent snapshot: ${(error as Error).message}`, { cause: error });
  }
}
