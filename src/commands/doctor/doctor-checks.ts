import { describeLeftover, findStagingDatabases, findThrowawayDirectories } from '../restore/cleanup/leftovers.js';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { type BackupConfig, loadBackupConfig } from '../../config/config.js';
import type { Env } from '../../config/env-source.js';
import { describeKey, keyMatches, loadDecryptionKeys, readPublicKeyFile } from '../../crypto/keys.js';
import { inspectSigning } from '../../crypto/signing.js';
import { isPmsError } from '../../errors/catalogue.js';
import { findPgProgram } from '../../postgres/binaries.js';
import { usingClient } from '../../postgres/connect.js';
import { insecureTransport, isUnixSocketHost } from '../../postgres/transport-security.js';
import type { PostgresConfig } from '../../config/postgres-config.js';
import { pgDumpVersion } from '../../postgres/logical-dump.js';
import { openStorage } from '../../storage/open-storage.js';
import type { DoctorCheck } from './doctor-check.js';
import { checkPointInTimeRecovery } from './pitr-check.js';
import { clusterChecks, readClusterFacts } from '../../postgres/patroni/cluster-health.js';

function onPath(program: string, env: Env): boolean {
  return (env['PATH'] ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Whether the database connection is verified TLS (or a Unix socket): a weaker POSTGRES_SSLMODE fails. */
function transportCheck(postgres: PostgresConfig): DoctorCheck {
  const insecure = insecureTransport(postgres);
  if (insecure !== undefined) {
    return {
      name: 'database tls',
      ok: false,
      detail: insecure,
      fix: 'set POSTGRES_SSLMODE=verify-full and POSTGRES_SSLROOTCERT to the CA certificate that signed the server certificate',
    };
  }
  if (isUnixSocketHost(postgres.host)) return { name: 'database tls', ok: true, detail: `Unix socket ${postgres.host}: no TLS needed` };
  return {
    name: 'database tls',
    ok: true,
    detail:
      postgres.sslmode === 'verify-full'
        ? `verify-full: TLS, the server certificate must chain to ${postgres.sslrootcert} and name ${postgres.host}`
        : `verify-ca: TLS, the server certificate must chain to ${postgres.sslrootcert} (its host name is not checked)`,
  };
}

/** The seed's troubleshooting section, as checks that each say how to fix what they find. */
export async function runDoctor(env: Env): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  for (const [program, fix] of [
    ['zstd', 'apt-get install zstd'],
    ['gpg', 'apt-get install gnupg (needed for the break-glass restore path)'],
  ] as const) {
    checks.push(
      onPath(program, env)
        ? { name: `tool ${program}`, ok: true, detail: 'found on PATH' }
        : { name: `tool ${program}`, ok: false, detail: 'not on PATH', fix },
    );
  }
  for (const program of ['pg_dump', 'pg_restore', 'initdb'] as const) {
    try {
      checks.push({ name: `tool ${program}`, ok: true, detail: findPgProgram(program, env as NodeJS.ProcessEnv) });
    } catch (error) {
      checks.push({
        name: `tool ${program}`,
        ok: false,
        detail: (error as Error).message,
        fix: 'apt-get install postgresql-15 (initdb is needed by verify) or set PG_BIN_DIR',
      });
    }
  }

  let config: BackupConfig;
  try {
    config = loadBackupConfig(env, { repository: true, encryption: true, postgres: true });
    checks.push({ name: 'config', ok: true, detail: 'every variable is valid' });
  } catch (error) {
    checks.push({
      name: 'config',
      ok: false,
      detail: (error as Error).message,
      fix: 'set the variables listed above (pms-backup --help lists them all)',
    });
    return checks;
  }

  checks.push(transportCheck(config.postgres));
  try {
    const [serverVersion, dumpVersion] = await Promise.all([
      usingClient(
        config.postgres,
        async (client) => (await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]?.v ?? '0',
      ),
      pgDumpVersion(),
    ]);
    const serverMajor = Math.floor(Number(serverVersion) / 10000);
    const dumpMajor = Number(/(\d+)\.\d+/.exec(dumpVersion)?.[1] ?? 0);
    checks.push({
      name: 'database',
      ok: true,
      detail: `${config.postgres.host}:${config.postgres.port}/${config.postgres.database} answers (PostgreSQL ${serverMajor})`,
    });
    checks.push(
      dumpMajor >= serverMajor
        ? { name: 'pg_dump version', ok: true, detail: `${dumpVersion} can dump a PostgreSQL ${serverMajor} server` }
        : {
            name: 'pg_dump version',
            ok: false,
            detail: `${dumpVersion} is older than the server (PostgreSQL ${serverMajor})`,
            fix: `install postgresql-client-${serverMajor} or newer`,
          },
    );
    checks.push(await leftoversCheck(config.postgres));
    checks.push(
      await checkPointInTimeRecovery(config.postgres).catch((error: unknown) => ({
        name: 'point-in-time recovery',
        ok: false,
        detail: (error as Error).message,
        fix: 'check the role can read pg_stat_archiver and pg_roles',
      })),
    );
  } catch (error) {
    checks.push({
      name: 'database',
      ok: false,
      detail: (error as Error).message,
      fix: 'check POSTGRES_HOST/PORT/USER/PASSWORD, pg_hba.conf and NetworkPolicies; try pg_isready -h $POSTGRES_HOST -p $POSTGRES_PORT',
    });
  }

  if (config.operations.patroniUrls.length > 0) {
    try {
      const facts = await readClusterFacts(config.operations.patroniUrls);
      for (const check of clusterChecks(facts, config.operations.maxReplicationLagSeconds))
        checks.push(
          check.ok
            ? check
            : {
                ...check,
                fix: 'patronictl list shows the members; docs/runbook.md#pmsbackuppostgresnosyncstandby and #pmsbackuppostgresreplicationlagging',
              },
        );
    } catch (error) {
      checks.push({
        name: 'ha cluster',
        ok: false,
        detail: (error as Error).message,
        fix: "check BACKUP_PATRONI_URLS (each member's REST API, port 8008) and the NetworkPolicy to it",
      });
    }
  }

  const storage = openStorage(config.repository!);
  try {
    await storage.probe();
    checks.push({ name: 'repository', ok: true, detail: `${storage.location} is reachable and writable` });
  } catch (error) {
    checks.push({
      name: 'repository',
      ok: false,
      detail: (error as Error).message,
      fix: 'check BACKUP_REPOSITORY, the credentials, the bucket policy and egress to the object store',
    });
  } finally {
    await storage.close();
  }

  try {
    const now = new Date();
    const keys = await Promise.all((await readPublicKeyFile(config.keys.publicKeyFile!)).map((k) => describeKey(k, now)));
    const matches = keys.some((k) => keyMatches(k, config.keys.keyId!));
    const soon = now.getTime() + config.operations.keyExpiryWarnDays * 86400_000;
    const expiring = keys.filter((k) => k.expiresAt !== null && Date.parse(k.expiresAt) <= soon);
    if (!matches)
      checks.push({
        name: 'public keys',
        ok: false,
        detail: `BACKUP_GPG_KEY_ID matches none of ${keys.map((k) => k.fingerprint).join(', ')}`,
        fix: 'mount the right public key file or correct BACKUP_GPG_KEY_ID',
      });
    else if (expiring.length)
      checks.push({
        name: 'public keys',
        ok: false,
        detail: expiring.map((k) => `${k.fingerprint} ${k.expired ? 'expired' : 'expires'} ${k.expiresAt}`).join('; '),
        fix: 'rotate the key: docs/key-rotation.md',
      });
    else
      checks.push({
        name: 'public keys',
        ok: true,
        detail: `${keys.length} key(s), BACKUP_GPG_KEY_ID matches, none expires within ${config.operations.keyExpiryWarnDays} days`,
      });
  } catch (error) {
    checks.push({
      name: 'public keys',
      ok: false,
      detail: (error as Error).message,
      fix: 'export the public key with gpg --armor --export and point BACKUP_GPG_PUBLIC_KEY_FILE at it',
    });
  }
  if (config.keys.privateKeyFile) {
    try {
      const keys = await loadDecryptionKeys(config.keys.privateKeyFile, config.keys.passphraseFile);
      checks.push({ name: 'private keys', ok: true, detail: `${keys.keys.length} key(s) load and unlock` });
    } catch (error) {
      checks.push({
        name: 'private keys',
        ok: false,
        detail: (error as Error).message,
        fix: 'check BACKUP_GPG_PRIVATE_KEY_FILE and BACKUP_GPG_PASSPHRASE_FILE',
      });
    }
  }

  if (config.keys.signingKeyFile || config.keys.trustedSignersFile) {
    const report = await inspectSigning(config.keys, config.operations.keyExpiryWarnDays);
    checks.push(
      report.problems.length === 0
        ? {
            name: 'signing keys',
            ok: true,
            detail: `${report.signing ? `signs as ${report.signing.fingerprint} (trusted); ` : ''}${report.trusted.length} trusted signer(s), none expiring within ${config.operations.keyExpiryWarnDays} days`,
          }
        : { name: 'signing keys', ok: false, detail: report.problems.join('; '), fix: 'docs/key-rotation.md (signing keys)' },
    );
  } else {
    checks.push({
      name: 'signing keys',
      ok: false,
      detail: 'neither BACKUP_SIGNING_KEY_FILE nor BACKUP_TRUSTED_SIGNERS_FILE is set: backups cannot be written or read',
      fix: 'mount the jobs signing key and the trusted signers file (docs/deploy.md)',
    });
  }

  const gateway = config.metrics.pushgateway;
  if (gateway) {
    try {
      const response = await fetch(`${gateway.url}/-/healthy`, { signal: AbortSignal.timeout(gateway.timeoutMs) });
      checks.push(
        response.ok
          ? { name: 'pushgateway', ok: true, detail: `${gateway.url} is healthy` }
          : { name: 'pushgateway', ok: false, detail: `${gateway.url} answered HTTP ${response.status}`, fix: 'check PUSHGATEWAY_URL' },
      );
    } catch (error) {
      checks.push({
        name: 'pushgateway',
        ok: false,
        detail: `${gateway.url} unreachable (${(error as Error).message})`,
        fix: 'check PUSHGATEWAY_URL and the NetworkPolicy to the monitoring namespace',
      });
    }
  }

  try {
    mkdirSync(config.operations.logDir, { recursive: true });
    accessSync(config.operations.logDir, constants.W_OK);
    checks.push({ name: 'log directory', ok: true, detail: `${config.operations.logDir} is writable` });
  } catch (error) {
    checks.push({
      name: 'log directory',
      ok: false,
      detail: `${config.operations.logDir}: ${isPmsError(error) ? error.message : (error as NodeJS.ErrnoException).code}`,
      fix: 'mount the backup-logs volume or set BACKUP_LOG_DIR to a writable directory',
    });
  }
  return checks;
}

/** What killed restores or verifies left behind: partial patient data in a staging database, a throwaway server's files. */
async function leftoversCheck(postgres: BackupConfig['postgres']): Promise<DoctorCheck> {
  try {
    const found = [...(await findStagingDatabases(postgres)), ...findThrowawayDirectories()];
    const orphaned = found.filter((l) => l.orphaned);
    return orphaned.length === 0
      ? {
          name: 'leftovers',
          ok: true,
          detail: `no staging database or throwaway directory left behind${found.length ? ` (${found.length} in use)` : ''}`,
        }
      : {
          name: 'leftovers',
          ok: false,
          detail: orphaned.map(describeLeftover).join('; '),
          fix: 'a restore or verify was killed: pms-backup restore --cleanup removes these after confirmation',
        };
  } catch (error) {
    return { name: 'leftovers', ok: false, detail: `cannot look for leftovers: ${(error as Error).message}` };
  }
}
