import type { BaseManifest } from '../../repository/manifest.js';
import type { DecryptionKeys } from '../../crypto/keys.js';
import type { TrustPolicy } from '../../crypto/signing.js';
import { isPmsError } from '../../errors/catalogue.js';
import type { PostgresConfig } from '../../config/postgres-config.js';
import { secretFilePaths } from '../../config/secret-files.js';
import type { ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { sandboxCheck } from './sandbox-check.js';
import { recoverBaseBackupInThrowawayCluster } from '../restore/pitr/recover-in-throwaway-cluster.js';
import type { Storage } from '../../storage/storage.js';
import { runAmcheck } from './amcheck.js';
import { checkStoredObjects } from '../../pipeline/check-stored.js';
import { usingSandboxClient } from './sandbox-client.js';
import type { Check } from '../../repository/verification-record.js';

/**
 * Proves a base backup and the WAL after it: unpack into a throwaway server, recover to the end
 * of the archive and promote, check the server answers, then amcheck every database.
 */
export async function verifyBaseBackup(options: {
  manifest: BaseManifest;
  storage: Storage;
  keys: DecryptionKeys;
  trust: TrustPolicy;
  /** Files the throwaway server must not be able to read; by default every secret file pms-backup's environment names. */
  protectedFiles?: readonly string[];
  /** @deprecated Ignored: the server gets no environment of ours (its WAL comes from a feed). */
  serverEnv?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}): Promise<Check[]> {
  const { manifest } = options;
  const checks: Check[] = [
    {
      name: 'manifest',
      ok: true,
      detail: `base backup of system ${manifest.systemIdentifier}, timeline ${manifest.timeline}, WAL ${manifest.startWalSegment}..${manifest.stopWalSegment}`,
    },
  ];
  const stored = await checkStoredObjects(options.storage, manifest.objects, options.signal);
  checks.push(stored);
  if (!stored.ok) return checks;
  let cluster: ThrowawayCluster;
  try {
    const recovered = await recoverBaseBackupInThrowawayCluster({
      manifest,
      storage: options.storage,
      keys: options.keys,
      trust: options.trust,
      protectedFiles: options.protectedFiles ?? secretFilePaths(process.env),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    cluster = recovered.cluster;
    checks.push(sandboxCheck(cluster, `WAL handed over by pms-backup (${recovered.walFiles} file(s)), never fetched by the server`));
    checks.push({
      name: 'restore',
      ok: true,
      detail: 'base backup fetched, sha256 and OpenPGP integrity verified, unpacked into a throwaway server',
    });
    if (recovered.filesVerified)
      checks.push({
        name: 'files',
        ok: true,
        detail: "pg_verifybackup: every file's size and checksum match the server's backup_manifest",
      });
    checks.push({ name: 'wal-recovery', ok: true, detail: 'recovered through the archived WAL to its end and promoted' });
  } catch (error) {
    // A sandbox that cannot be set up safely says nothing about the backup: no verdict.
    if (isPmsError(error, 'PMS_ERR_CONFIG')) throw error;
    const message = (error as Error).message;
    const name =
      /backup_manifest/.test(message) && isPmsError(error, 'PMS_ERR_INTEGRITY')
        ? 'files'
        : isPmsError(error, 'PMS_ERR_INTEGRITY') || isPmsError(error, 'PMS_ERR_KEY')
          ? 'openpgp-integrity'
          : isPmsError(error, 'PMS_ERR_WAL_TIMEOUT')
            ? 'wal-recovery'
            : 'restore';
    checks.push({ name, ok: false, detail: message });
    return checks;
  }
  try {
    const base: PostgresConfig = {
      host: cluster.host,
      port: cluster.port,
      database: 'postgres',
      user: cluster.superuser,
      password: undefined,
      sslmode: 'disable',
      sslrootcert: undefined,
    };
    const databases = await usingSandboxClient(base, async (client) => {
      const version = (await client.query<{ v: string }>('SELECT version() AS v')).rows[0]?.v ?? '';
      checks.push({ name: 'server-answers', ok: true, detail: version.split(',')[0] ?? version });
      return (
        await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1')
      ).rows.map((r) => r.datname);
    });
    const failures: string[] = [];
    let indexes = 0;
    for (const database of databases) {
      const check = await usingSandboxClient({ ...base, database }, (client) => runAmcheck(client));
      if (!check.ok) failures.push(`${database}: ${check.detail}`);
      else indexes += Number(/on (\d+) B-tree/.exec(check.detail)?.[1] ?? 0);
    }
    checks.push(
      failures.length
        ? { name: 'amcheck', ok: false, detail: failures.join('; ') }
        : { name: 'amcheck', ok: true, detail: `bt_index_check passed on ${indexes} B-tree indexes in ${databases.length} database(s)` },
    );
  } catch (error) {
    checks.push({ name: 'server-answers', ok: false, detail: (error as Error).message });
  } finally {
    await cluster.destroy();
  }
  checks.push({ name: 'cleanup', ok: true, detail: 'throwaway server stopped and its files removed' });
  return checks;
}
