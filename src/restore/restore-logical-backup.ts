import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { LogicalManifest } from '../catalog/manifest.js';
import { startDecompressor } from '../compression/zstd.js';
import type { PostgresConfig } from '../config/postgres-config.js';
import type { DecryptionKeys } from '../crypto/keys.js';
import { classifyCipherError, decryptStream } from '../crypto/stream-cipher.js';
import { PmsError, isPmsError } from '../errors/catalogue.js';
import { countTableRows } from '../postgres/dump-snapshot.js';
import { quoteIdent, usingClient } from '../postgres/connect.js';
import { startPgRestore } from '../postgres/logical-restore.js';
import type { Storage } from '../storage/storage.js';
import { ByteMeter } from '../streams/byte-meter.js';

export interface RestoreOptions {
  readonly manifest: LogicalManifest;
  readonly storage: Storage;
  readonly postgres: PostgresConfig;
  readonly keys: DecryptionKeys;
  readonly targetDb: string;
  readonly noOwner?: boolean;
  /** Fail when a table's row count differs from the manifest (default). verify compares itself to report every table. */
  readonly enforceRowCounts?: boolean;
  readonly onProgress?: (fetchedBytes: number, totalBytes: number) => void;
  readonly signal?: AbortSignal;
}

export interface RestoreResult {
  readonly id: string;
  readonly targetDb: string;
  readonly bytes: number;
  readonly durationSeconds: number;
  readonly tables: Array<{ schema: string; name: string; rows: number; expected: number }>;
}

const VALID_DB_NAME = /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/;

/**
 * Restores a logical backup into a NEW database. Data goes into a staging database first and
 * is renamed to the target only after every check passed (stored sha256, OpenPGP MDC, zstd
 * checksum, pg_restore exit status, row counts), so the target name never holds a partial or
 * tampered restore; on any failure the staging database is dropped.
 */
export async function restoreLogicalBackup(options: RestoreOptions): Promise<RestoreResult> {
  const { manifest, storage, postgres, targetDb } = options;
  if (!VALID_DB_NAME.test(targetDb)) {
    throw new PmsError('PMS_ERR_USAGE', `--target-db ${JSON.stringify(targetDb)} is not a valid database name (letters, digits, _ $ -; at most 63 characters)`);
  }
  const object = manifest.objects[0];
  if (!object) throw new PmsError('PMS_ERR_MANIFEST', `manifest of ${manifest.id} lists no objects`);
  const started = Date.now();
  const staging = `${targetDb.slice(0, 40)}__restoring_${randomBytes(3).toString('hex')}`;
  const admin = { ...postgres, database: 'postgres' };

  await usingClient(admin, async (client) => {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [targetDb]);
    if (exists.rowCount) throw new PmsError('PMS_ERR_TARGET_EXISTS', `database ${targetDb} already exists on ${postgres.host}:${postgres.port}: restore never overwrites; choose another --target-db`);
    await client.query(`CREATE DATABASE ${quoteIdent(staging)} TEMPLATE template0`);
  });

  let renamed = false;
  try {
    const abort = new AbortController();
    const fetched = new ByteMeter({ sha256: true, onProgress: (n) => options.onProgress?.(n, object.bytes) });
    const source = await storage.get(object.key, { signal: abort.signal });
    const hashedSource = source.pipe(fetched);
    source.on('error', (error) => fetched.destroy(error));
    const plain = await decryptStream(hashedSource, options.keys);
    const zstd = startDecompressor({ signal: abort.signal });
    const restore = startPgRestore(postgres, { database: staging, noOwner: options.noOwner ?? false, signal: abort.signal });
    const stages = [
      pipeline(plain, zstd.child.stdin!).catch((error: unknown) => {
        throw classifyCipherError(error) ?? error;
      }),
      pipeline(zstd.child.stdout!, restore.child.stdin!),
      zstd.done.catch((error: unknown) => {
        throw new PmsError('PMS_ERR_INTEGRITY', `decompression failed (${(error as Error).message}): the backup data is corrupt`, { cause: error });
      }),
      restore.done,
    ];
    const settled = await Promise.allSettled(stages.map((p) => p.catch((error: unknown) => { abort.abort(error); throw error; })));
    const failure = pickRootCause(settled);
    if (failure) throw failure;
    if (fetched.bytes !== object.bytes || fetched.sha256 !== object.sha256) {
      throw new PmsError('PMS_ERR_INTEGRITY', `${object.key} does not match its manifest (sha256 or size differs): the stored backup was modified; refusing it`, {
        details: { expectedSha256: object.sha256, actualSha256: fetched.sha256, expectedBytes: object.bytes, actualBytes: fetched.bytes },
      });
    }
    const tables = await usingClient(postgres, (client) => countTableRows(client), { database: staging });
    const expected = new Map(manifest.tables.map((t) => [`${t.schema}.${t.name}`, t.rows]));
    const compared = tables.map((t) => ({ ...t, expected: expected.get(`${t.schema}.${t.name}`) ?? -1 }));
    const mismatch = compared.find((t) => t.rows !== t.expected) ?? (tables.length !== manifest.tables.length ? compared[0] : undefined);
    if ((options.enforceRowCounts ?? true) && (mismatch || tables.length !== manifest.tables.length)) {
      throw new PmsError('PMS_ERR_INTEGRITY', `restored data does not match the manifest (${tables.length} tables restored, ${manifest.tables.length} expected${mismatch ? `; ${mismatch.schema}.${mismatch.name} has ${mismatch.rows} rows, manifest says ${mismatch.expected}` : ''})`);
    }
    await usingClient(admin, async (client) => {
      await client.query(`ALTER DATABASE ${quoteIdent(staging)} RENAME TO ${quoteIdent(targetDb)}`).catch((error: unknown) => {
        if ((error as { code?: string }).code === '42P04') {
          throw new PmsError('PMS_ERR_TARGET_EXISTS', `database ${targetDb} was created by someone else while restoring; the restore was discarded`);
        }
        throw error;
      });
    });
    renamed = true;
    return { id: manifest.id, targetDb, bytes: fetched.bytes, durationSeconds: (Date.now() - started) / 1000, tables: compared };
  } catch (error) {
    throw isPmsError(error) ? error : new PmsError('PMS_ERR_INTERNAL', `restore failed: ${(error as Error).message}`, { cause: error });
  } finally {
    if (!renamed) {
      await usingClient(admin, (client) => client.query(`DROP DATABASE IF EXISTS ${quoteIdent(staging)} WITH (FORCE)`)).catch(() => undefined);
    }
  }
}

/** The most meaningful failure: integrity and key errors explain the others (e.g. a broken pipe). */
function pickRootCause(settled: PromiseSettledResult<unknown>[]): unknown {
  const errors = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => s.reason as unknown);
  if (errors.length === 0) return undefined;
  const rank = (e: unknown): number => {
    const classified = classifyCipherError(e);
    if (classified || isPmsError(e, 'PMS_ERR_INTEGRITY')) return 0;
    if (isPmsError(e, 'PMS_ERR_KEY') || isPmsError(e, 'PMS_ERR_REPO_UNAVAILABLE') || isPmsError(e, 'PMS_ERR_NOT_FOUND')) return 1;
    if (isPmsError(e, 'PMS_ERR_TOOL_FAILED')) return 2;
    return 3;
  };
  const best = errors.sort((a, b) => rank(a) - rank(b))[0];
  return classifyCipherError(best) ?? best;
}
