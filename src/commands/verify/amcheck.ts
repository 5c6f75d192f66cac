import type pg from 'pg';
import type { Check } from '../../repository/verification-record.js';

/**
 * amcheck's bt_index_check on every B-tree index (heapallindexed: also proves every heap
 * tuple is in the index). Partitioned parents (relkind I) hold no data and are skipped.
 */
export async function runAmcheck(client: pg.Client): Promise<Check> {
  await client.query('CREATE EXTENSION IF NOT EXISTS amcheck');
  const indexes = await client.query<{ oid: number; name: string }>(`
    SELECT c.oid, n.nspname || '.' || c.relname AS name
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_am am ON am.oid = c.relam
    WHERE am.amname = 'btree' AND c.relkind = 'i' AND c.relpersistence <> 't'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
    ORDER BY 2`);
  const failures: string[] = [];
  for (const index of indexes.rows) {
    try {
      await client.query('SELECT bt_index_check($1::regclass, true)', [index.oid]);
    } catch (error) {
      failures.push(`${index.name}: ${(error as Error).message}`);
    }
  }
  await client.query(`DROP EXTENSION amcheck`).catch(() => undefined);
  return failures.length === 0
    ? { name: 'amcheck', ok: true, detail: `bt_index_check passed on ${indexes.rows.length} B-tree indexes` }
    : { name: 'amcheck', ok: false, detail: failures.join('; ') };
}
