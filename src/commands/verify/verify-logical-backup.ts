import { formatBytes } from '../../cli/progress.js';
import type { LogicalManifest } from '../../repository/manifest.js';
import type { PostgresConfig } from '../../config/postgres-config.js';
import type { DecryptionKeys } from '../../crypto/keys.js';
import type { TrustPolicy } from '../../crypto/signing.js';
import { isPmsError } from '../../errors/catalogue.js';
import { countTableRows } from '../../postgres/dump-snapshot.js';
import { type ThrowawayCluster, usingThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { restoreLogicalBackup } from '../restore/restore-logical-backup.js';
import type { Storage } from '../../storage/storage.js';
import type { Check } from '../../repository/verification-record.js';
import { secretFilePaths } from '../../config/secret-files.js';
import { runAmcheck } from './amcheck.js';
import { usingSandboxClient } from './sandbox-client.js';
import { sandboxCheck } from './sandbox-check.js';
import { usingAttachedServer } from './attached-server.js';
import { checkStoredObjects } from '../../pipeline/check-stored.js';

const TARGET_DB = 'pms_verify';

export interface VerifyLogicalOptions {
  readonly manifest: LogicalManifest;
  readonly storage: Storage;
  readonly keys: DecryptionKeys;
  readonly trust: TrustPolicy;
  /** Files the throwaway server must not be able to read; by default every secret file pms-backup's environment names. */
  readonly protectedFiles?: readonly string[];
  readonly onCluster?: (cluster: ThrowawayCluster) => void;
  /** Restore into the server `pms-backup verify-server` runs there (the verify pod's sidecar) instead of starting one. */
  readonly attachSocketDir?: string;
  /** A line saying where verify is (stored-object check, restore), for the terminal and the log. */
  readonly onProgress?: (text: string) => void;
  readonly signal?: AbortSignal;
}

function throwawayPostgres(cluster: ThrowawayCluster): PostgresConfig {
  return {
    host: cluster.host,
    port: cluster.port,
    database: TARGET_DB,
    user: cluster.superuser,
    password: undefined,
    sslmode: 'disable',
    sslrootcert: undefined,
  };
}

/**
 * Proves a logical backup restores: into a throwaway cluster of the dump's major version
 * (never the production server), with every check recorded rather than stopping at the first.
 */
export async function verifyLogicalBackup(options: VerifyLogicalOptions): Promise<Check[]> {
  const { manifest } = options;
  const checks: Check[] = [
    {
      name: 'manifest',
      ok: true,
      detail: `manifest parsed: ${manifest.tables.length} tables, ${manifest.objects.length} object(s), encrypted to ${manifest.keyFingerprints.join(', ')}`,
    },
  ];
  // Size and sha256 before anything is decrypted: a changed object is named as such, and never reaches a server.
  const stored = await checkStoredObjects(options.storage, manifest.objects, options.signal, (done, total) =>
    options.onProgress?.(`checking size and sha256: ${formatBytes(done)} of ${formatBytes(total)}`),
  );
  checks.push(stored);
  if (!stored.ok) return checks;
  const major = Math.floor(manifest.serverVersionNum / 10000);
  const protectedFiles = options.protectedFiles ?? secretFilePaths(process.env);
  // pg_restore runs whatever the dump holds (index expressions, defaults, constraints) as the
  // superuser of this server: it is a sandbox, with nothing of ours to reach.
  if (options.attachSocketDir !== undefined) {
    await usingAttachedServer(
      {
        socketDir: options.attachSocketDir,
        major,
        protectedFiles,
        database: TARGET_DB,
        ...(options.signal ? { signal: options.signal } : {}),
      },
      (server) => restoreAndCheck(options, checks, major, server.postgres(TARGET_DB), server.sandbox),
    );
    checks.push({ name: 'cleanup', ok: true, detail: `restored database dropped from verify-server` });
    return checks;
  }
  await usingThrowawayCluster({ major, sandbox: { protectedFiles } }, async (cluster) => {
    options.onCluster?.(cluster);
    await restoreAndCheck(options, checks, major, throwawayPostgres(cluster), sandboxCheck(cluster));
  });
  checks.push({ name: 'cleanup', ok: true, detail: 'throwaway server stopped and its files removed' });
  return checks;
}

async function restoreAndCheck(
  options: VerifyLogicalOptions,
  checks: Check[],
  major: number,
  postgres: PostgresConfig,
  sandbox: Check,
): Promise<void> {
  const { manifest } = options;
  checks.push(sandbox);
  let restored = false;
  try {
    await restoreLogicalBackup({
      manifest,
      storage: options.storage,
      postgres,
      keys: options.keys,
      trust: options.trust,
      targetDb: TARGET_DB,
      noOwner: true,
      enforceRowCounts: false,
      ...(options.signal ? { signal: options.signal } : {}),
      onProgress: (done: number, total: number) =>
        options.onProgress?.(`restoring into the throwaway server: ${formatBytes(done)} of ${formatBytes(total)} fetched`),
    });
    restored = true;
    checks.push({ name: 'openpgp-integrity', ok: true, detail: 'decrypted; OpenPGP modification detection code verified' });
    checks.push({ name: 'restore', ok: true, detail: `pg_restore into a throwaway PostgreSQL ${major} completed without errors` });
  } catch (error) {
    const code = isPmsError(error) ? error.code : 'PMS_ERR_INTERNAL';
    const message = (error as Error).message;
    if (code === 'PMS_ERR_INTEGRITY' && /sha256|does not match its manifest/.test(message)) {
      checks.push({ name: 'sha256', ok: false, detail: message });
    } else if (code === 'PMS_ERR_INTEGRITY' || code === 'PMS_ERR_KEY') {
      checks.push({ name: 'openpgp-integrity', ok: false, detail: message });
    } else {
      checks.push({ name: 'restore', ok: false, detail: message });
    }
  }
  if (!restored) return;
  const counted = await usingSandboxClient(postgres, (client) => countTableRows(client));
  const actual = new Map(counted.map((t) => [`${t.schema}.${t.name}`, t.rows]));
  const wrong = manifest.tables.filter((t) => actual.get(`${t.schema}.${t.name}`) !== t.rows);
  const extra = counted.filter((t) => !manifest.tables.some((m) => m.schema === t.schema && m.name === t.name));
  const rows = manifest.tables.reduce((sum, t) => sum + t.rows, 0);
  checks.push(
    wrong.length === 0 && extra.length === 0
      ? { name: 'row-counts', ok: true, detail: `${manifest.tables.length} tables, ${rows} rows, every count equals the manifest` }
      : {
          name: 'row-counts',
          ok: false,
          detail: [
            ...wrong.map((t) => `${t.schema}.${t.name}: manifest ${t.rows}, restored ${actual.get(`${t.schema}.${t.name}`) ?? 'missing'}`),
            ...extra.map((t) => `${t.schema}.${t.name}: not in the manifest`),
          ].join('; '),
        },
  );
  checks.push(await usingSandboxClient(postgres, (client) => runAmcheck(client)));
}
