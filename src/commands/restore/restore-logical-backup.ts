import type { LogicalManifest, TableCount } from '../../repository/manifest.js';
import { type PostgresConfig, endpointsOf, pinnedTo } from '../../config/postgres-config.js';
import type { DecryptionKeys } from '../../crypto/keys.js';
import { PmsError, isPmsError } from '../../errors/catalogue.js';
import { connectToTarget, quoteIdent, usingClient } from '../../postgres/connect.js';
import { countTableRows } from '../../postgres/dump-snapshot.js';
import { type RestoreProcessOptions, startRestore } from '../../postgres/logical-restore.js';
import type { Storage } from '../../storage/storage.js';
import type { Readable } from 'node:stream';
import { type ReaderTrust, consumeVerified, openEncrypted } from '../../pipeline/open-encrypted.js';
import { feedStdin } from '../../streams/feed-stdin.js';
import { CopyRowFilter } from './copy-row-filter.js';
import { withStagingDatabase } from './staging-database.js';

/** What to restore: everything, some tables, or one patient's telemetry. */
export type RestoreScope =
  | { readonly kind: 'full' }
  | { readonly kind: 'tables'; readonly tables: ReadonlyArray<{ schema: string; name: string }> }
  | { readonly kind: 'patient'; readonly nhsNumber: string };

export interface RestoreOptions {
  readonly manifest: LogicalManifest;
  readonly storage: Storage;
  readonly postgres: PostgresConfig;
  readonly keys: DecryptionKeys;
  /** Whose signatures the backup's object must carry. */
  readonly trust: ReaderTrust;
  readonly targetDb: string;
  readonly scope?: RestoreScope;
  readonly noOwner?: boolean;
  /** Fail when a table's row count differs from the manifest (default). verify compares itself to report every table. */
  readonly enforceRowCounts?: boolean;
  readonly onProgress?: (fetchedBytes: number, totalBytes: number) => void;
  /** Stops the restore; the staging database is dropped as on any failure. */
  readonly signal?: AbortSignal;
}

export interface RestoreResult {
  readonly id: string;
  readonly targetDb: string;
  readonly scope: RestoreScope['kind'];
  readonly bytes: number;
  readonly durationSeconds: number;
  /** expected: the manifest's count (-1 when the scope makes it incomparable, e.g. one patient). */
  readonly tables: Array<{ schema: string; name: string; rows: number; expected: number }>;
}

/** The column that identifies a patient in the telemetry schema (docs/telemetry.md). */
export const PATIENT_COLUMN = 'patient_nhs_number';
export const TELEMETRY_SCHEMA = 'telemetry';

/**
 * Restores a logical backup into a NEW database. Data goes into a staging database first and
 * is renamed to the target only after every check passed (stored sha256, OpenPGP MDC, zstd
 * checksum, pg_restore/psql exit status, row counts), so the target name never holds a partial
 * or tampered restore; on any failure the staging database is dropped.
 */
export async function restoreLogicalBackup(given: RestoreOptions): Promise<RestoreResult> {
  const options = { ...given, postgres: await primaryOf(given.postgres) };
  const { manifest, postgres, targetDb } = options;
  const scope = options.scope ?? { kind: 'full' };
  const started = Date.now();
  const object = manifest.objects[0];
  if (!object) throw new PmsError('PMS_ERR_MANIFEST', `manifest of ${manifest.id} lists no objects`);
  if (scope.kind === 'tables') {
    const missing = scope.tables.filter(
      (t) => !manifest.tables.some((m) => (m.schema === t.schema && m.name === t.name) || m.partitionOf === `${t.schema}.${t.name}`),
    );
    if (missing.length) {
      throw new PmsError(
        'PMS_ERR_NOT_FOUND',
        `backup ${manifest.id} has no table ${missing.map((t) => `${t.schema}.${t.name}`).join(', ')} (it holds ${manifest.tables.length} tables; see its manifest)`,
      );
    }
  }
  if (scope.kind === 'patient' && !manifest.tables.some((t) => t.schema === TELEMETRY_SCHEMA)) {
    throw new PmsError(
      'PMS_ERR_NOT_FOUND',
      `backup ${manifest.id} holds no ${TELEMETRY_SCHEMA} schema: a per-patient restore needs the telemetry tables`,
    );
  }

  const context: ScopeContext = {
    options,
    pass: async (consume) => {
      const opened = await openEncrypted({
        storage: options.storage,
        key: object.key,
        keys: options.keys,
        trust: options.trust,
        stored: object,
        decompress: true,
        ...(options.onProgress ? { onProgress: (n: number) => options.onProgress?.(n, object.bytes) } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      await consumeVerified(opened, consume);
    },
  };

  try {
    return await withStagingDatabase(postgres, targetDb, async (staging) => {
      const expected =
        scope.kind === 'full'
          ? await restoreFull(context, staging)
          : scope.kind === 'tables'
            ? await restoreTables(context, staging, scope.tables)
            : await restorePatient(context, staging, scope.nhsNumber);
      const counted = await usingClient(postgres, (client) => countTableRows(client), { database: staging });
      const wanted =
        expected === undefined ? counted : counted.filter((t) => expected!.some((m) => m.schema === t.schema && m.name === t.name));
      const byName = new Map((expected ?? []).map((t) => [`${t.schema}.${t.name}`, t.rows]));
      const tables = wanted.map((t) => ({ ...t, expected: expected === undefined ? -1 : (byName.get(`${t.schema}.${t.name}`) ?? -1) }));
      if (expected !== undefined && (options.enforceRowCounts ?? true)) {
        const mismatch = tables.find((t) => t.rows !== t.expected);
        if (mismatch || tables.length !== expected.length) {
          throw new PmsError(
            'PMS_ERR_INTEGRITY',
            `restored data does not match the manifest (${tables.length} tables restored, ${expected.length} expected${mismatch ? `; ${mismatch.schema}.${mismatch.name} has ${mismatch.rows} rows, manifest says ${mismatch.expected}` : ''})`,
          );
        }
      }
      return { id: manifest.id, targetDb, scope: scope.kind, bytes: object.bytes, durationSeconds: (Date.now() - started) / 1000, tables };
    });
  } catch (error) {
    throw isPmsError(error) ? error : new PmsError('PMS_ERR_INTERNAL', `restore failed: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * A restore writes, so with a POSTGRES_HOST list it finds the primary once and every connection
 * of it (the staging database, psql, the row counts, the rename) goes there. Leaving each to
 * libpq's read-write search failed after a failover: a standby listed before the primary had not
 * yet replayed the new staging database, refused the connection for that database, and libpq
 * tries no further server after a server's refusal (only after one that is down or read-only).
 */
async function primaryOf(postgres: PostgresConfig): Promise<PostgresConfig> {
  if (endpointsOf(postgres).length === 1) return postgres;
  const found = await connectToTarget({ ...postgres, database: 'postgres' }, 'read-write', { applicationName: 'pms-backup' });
  await found.client.end().catch(() => undefined);
  return pinnedTo(postgres, found.endpoint);
}

interface ScopeContext {
  readonly options: RestoreOptions;
  /** One verified pass over the backup's plaintext archive into `consume`. */
  readonly pass: (consume: (archive: Readable) => Promise<void>) => Promise<void>;
}

type PgRestoreExtra = Omit<RestoreProcessOptions, 'database' | 'noOwner' | 'signal'>;

function restoreInto(context: ScopeContext, database: string, extra: PgRestoreExtra): Promise<void> {
  const { options } = context;
  return context.pass(async (archive) => {
    const restore = startRestore(options.postgres, {
      database,
      noOwner: options.noOwner ?? false,
      ...extra,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    await Promise.all([feedStdin(archive, restore.input), restore.done]);
  });
}

/** Everything; every table's count is compared with the manifest. */
async function restoreFull(context: ScopeContext, staging: string): Promise<TableCount[]> {
  await restoreInto(context, staging, {});
  return context.options.manifest.tables;
}

/**
 * pg_restore -t alone restores neither indexes nor partition attachments, so: every definition
 * first, then drop what was not asked for (CASCADE removes foreign keys to dropped tables), then
 * load the data of what remains. A partitioned table comes with its partitions, where its rows
 * live; a partition comes with its parent. Returns the tables whose counts are compared.
 */
async function restoreTables(
  context: ScopeContext,
  staging: string,
  tables: ReadonlyArray<{ schema: string; name: string }>,
): Promise<TableCount[]> {
  const { manifest, postgres } = context.options;
  const wanted = (m: { schema: string; name: string; partitionOf?: string | undefined }) =>
    tables.some((t) => (t.schema === m.schema && t.name === m.name) || m.partitionOf === `${t.schema}.${t.name}`);
  const leaves = manifest.tables.filter(wanted);
  const keep = new Set([
    ...tables.map((t) => `${t.schema}.${t.name}`),
    ...leaves.map((t) => `${t.schema}.${t.name}`),
    ...leaves.flatMap((t) => (t.partitionOf ? [t.partitionOf] : [])),
  ]);
  await restoreInto(context, staging, { section: 'schema-only' });
  await usingClient(
    postgres,
    async (client) => {
      const present = await client.query<{ qualified: string; schema: string; name: string }>(`
      SELECT n.nspname || '.' || c.relname AS qualified, n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`);
      for (const table of present.rows) {
        if (!keep.has(table.qualified))
          await client.query(`DROP TABLE IF EXISTS ${quoteIdent(table.schema)}.${quoteIdent(table.name)} CASCADE`);
      }
    },
    { database: staging },
  );
  // pg_restore's -n and -t combine as a cross product, so load one schema per pass.
  const bySchema = new Map<string, string[]>();
  for (const t of leaves) bySchema.set(t.schema, [...(bySchema.get(t.schema) ?? []), t.name]);
  for (const [schema, names] of bySchema) await restoreInto(context, staging, { section: 'data-only', schemas: [schema], tables: names });
  return leaves;
}

/**
 * Every definition (pg_restore -n would skip CREATE SCHEMA and cross-schema objects), then only
 * the patient's rows of the telemetry schema: every other table stays empty. Counts are not
 * comparable with the manifest's (undefined).
 */
async function restorePatient(context: ScopeContext, staging: string, nhsNumber: string): Promise<undefined> {
  await restoreInto(context, staging, { section: 'schema-only' });
  await restoreInto(context, staging, {
    schemas: [TELEMETRY_SCHEMA],
    section: 'data-only',
    rowFilter: new CopyRowFilter(PATIENT_COLUMN, nhsNumber),
  });
  return undefined;
}
