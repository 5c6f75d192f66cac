import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { PmsError } from '../errors/catalogue.js';
import type { Env } from './env-source.js';
import { type MetricsConfig, parseMetrics } from './metrics-config.js';
import { type PostgresConfig, parsePostgres } from './postgres-config.js';
import { Problems, boolSchema, deepFreeze, throwIfProblems } from './problems.js';
import type { Secret } from './secret.js';

export type { PostgresConfig } from './postgres-config.js';

export interface S3Settings {
  readonly bucket: string;
  readonly prefix: string;
  readonly region: string;
  readonly endpoint: string | undefined;
  readonly forcePathStyle: boolean;
  readonly accessKeyId: Secret | undefined;
  readonly secretAccessKey: Secret | undefined;
}

export type RepositoryConfig =
  | { readonly kind: 'file'; readonly url: string; readonly root: string }
  | { readonly kind: 's3'; readonly url: string; readonly s3: S3Settings };

export interface KeyConfig {
  /** Armored public key(s) every backup is encrypted to. */
  readonly publicKeyFile: string | undefined;
  /** The key that must be among the public keys (guards against a wrong key being mounted). */
  readonly keyId: string | undefined;
  readonly privateKeyFile: string | undefined;
  readonly passphraseFile: string | undefined;
}

/** Thresholds of the seed's alert conditions, logging and audit identity (backup operations). */
export interface OperationsConfig {
  readonly logDir: string;
  readonly maxAgeHours: number;
  readonly sizeDeviation: number;
  readonly keyExpiryWarnDays: number;
  readonly verifyMaxAgeDays: number;
  readonly walMaxAgeMinutes: number;
  /** zstd worker threads the database server uses to compress a base backup (0: none). */
  readonly baseBackupZstdWorkers: number;
  /** Kubernetes pod name (POD_NAME via the downward API), for audit records. */
  readonly podName: string | undefined;
}

export interface BackupConfig {
  readonly postgres: PostgresConfig;
  readonly repository: RepositoryConfig | undefined;
  readonly keys: KeyConfig;
  readonly retentionDays: number;
  readonly operations: OperationsConfig;
  readonly metrics: MetricsConfig;
}

/** What a command needs; only these are required to be present. */
export interface ConfigNeeds {
  readonly repository?: boolean;
  readonly encryption?: boolean;
  readonly decryption?: boolean;
}

const daysSchema = z.coerce.number().int().min(0).max(36500);
const positiveSchema = z.coerce.number().positive().max(1e6);

function parseOperations(env: Env, p: Problems): OperationsConfig {
  const logDir = env['BACKUP_LOG_DIR'] || '/var/log/pms';
  if (!isAbsolute(logDir)) p.add(`BACKUP_LOG_DIR=${JSON.stringify(logDir)} is invalid: use an absolute directory path`);
  return {
    logDir,
    maxAgeHours: p.parse(env, 'BACKUP_MAX_AGE_HOURS', positiveSchema, 25, 'use a positive number of hours'),
    sizeDeviation: p.parse(env, 'BACKUP_SIZE_DEVIATION', positiveSchema, 0.5, 'use a positive ratio such as 0.5 (50 %)'),
    keyExpiryWarnDays: p.parse(env, 'BACKUP_KEY_EXPIRY_WARN_DAYS', daysSchema, 30, 'use a whole number of days'),
    verifyMaxAgeDays: p.parse(env, 'BACKUP_VERIFY_MAX_AGE_DAYS', positiveSchema, 8, 'use a positive number of days'),
    walMaxAgeMinutes: p.parse(env, 'BACKUP_WAL_MAX_AGE_MINUTES', positiveSchema, 15, 'use a positive number of minutes'),
    baseBackupZstdWorkers: p.parse(
      env,
      'BACKUP_BASE_ZSTD_WORKERS',
      z.coerce.number().int().min(0).max(64),
      2,
      'use a whole number of threads from 0 to 64',
    ),
    podName: env['POD_NAME'] || undefined,
  };
}

export function parseRepository(env: Env, p: Problems, required: boolean): RepositoryConfig | undefined {
  const bucketEnv = env['S3_BUCKET'] || undefined;
  const url = env['BACKUP_REPOSITORY'] || (bucketEnv ? `s3://${bucketEnv}` : undefined);
  const accessKeyId = p.secret(env, 'AWS_ACCESS_KEY_ID');
  const secretAccessKey = p.secret(env, 'AWS_SECRET_ACCESS_KEY');
  const forcePathStyle = p.parse(env, 'S3_FORCE_PATH_STYLE', boolSchema, false, 'use true or false');
  const endpoint = env['S3_ENDPOINT'] || undefined;
  if (endpoint !== undefined && !/^https?:\/\/[^\s/]+/.test(endpoint)) {
    p.add(`S3_ENDPOINT=${JSON.stringify(endpoint)} is invalid: use a URL such as https://minio.example:9000`);
  }
  if (url === undefined) {
    if (required) p.add('BACKUP_REPOSITORY is not set: use s3://bucket/prefix or file:///absolute/path (or set S3_BUCKET)');
    return undefined;
  }
  if (url.startsWith('file://')) {
    let root: string;
    try {
      root = decodeURIComponent(new URL(url).pathname);
    } catch {
      root = '';
    }
    if (!url.startsWith('file:///') || !isAbsolute(root) || root === '/') {
      p.add(`BACKUP_REPOSITORY=${JSON.stringify(url)} is invalid: a file repository needs an absolute path, e.g. file:///var/backups/pms`);
    }
    return { kind: 'file', url, root: root.replace(/\/+$/, '') };
  }
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!match) {
    p.add(`BACKUP_REPOSITORY=${JSON.stringify(url)} is invalid: use s3://bucket/optional/prefix or file:///absolute/path`);
    return undefined;
  }
  const region = env['AWS_REGION'] || env['AWS_DEFAULT_REGION'] || undefined;
  if (region === undefined && endpoint === undefined) {
    p.add('AWS_REGION is not set: it is required for an s3:// repository (e.g. eu-west-2)');
  }
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    p.add('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together (or neither, to use the default credential chain)');
  }
  return {
    kind: 's3',
    url,
    s3: {
      bucket: match[1] ?? '',
      prefix: (match[2] ?? '').replace(/^\/+|\/+$/g, ''),
      region: region ?? 'us-east-1',
      endpoint,
      forcePathStyle,
      accessKeyId,
      secretAccessKey,
    },
  };
}

function parseKeys(env: Env, p: Problems, needs: ConfigNeeds): KeyConfig {
  const keys: KeyConfig = {
    publicKeyFile: env['BACKUP_GPG_PUBLIC_KEY_FILE'] || undefined,
    keyId: p.plain(env, 'BACKUP_GPG_KEY_ID'),
    privateKeyFile: env['BACKUP_GPG_PRIVATE_KEY_FILE'] || undefined,
    passphraseFile: env['BACKUP_GPG_PASSPHRASE_FILE'] || undefined,
  };
  if (keys.keyId !== undefined && !/^(0x)?[0-9A-Fa-f]{8,40}$/.test(keys.keyId.replace(/\s+/g, ''))) {
    p.add('BACKUP_GPG_KEY_ID is invalid: use a hex key ID or fingerprint (16 or 40 hex digits)');
  }
  if (needs.encryption) {
    if (keys.publicKeyFile === undefined)
      p.add('BACKUP_GPG_PUBLIC_KEY_FILE is not set: point it at the armored public key(s) to encrypt to');
    if (keys.keyId === undefined) p.add('BACKUP_GPG_KEY_ID is not set: name the key backups must be encrypted to');
  }
  if (needs.decryption && keys.privateKeyFile === undefined) {
    p.add('BACKUP_GPG_PRIVATE_KEY_FILE is not set: restore needs the armored private key(s)');
  }
  return keys;
}

/**
 * Parses and validates the environment once, at the edge. Every problem is reported in one
 * error (PMS_ERR_CONFIG, exit 2); secret values never appear in it. The result is frozen.
 */
export function loadBackupConfig(env: Env, needs: ConfigNeeds = {}): BackupConfig {
  const problems = new Problems();
  const config: BackupConfig = {
    postgres: parsePostgres(env, problems),
    repository: parseRepository(env, problems, needs.repository ?? false),
    keys: parseKeys(env, problems, needs),
    retentionDays: problems.parse(env, 'BACKUP_RETENTION_DAYS', daysSchema, 30, 'use a whole number of days (0-36500)'),
    operations: parseOperations(env, problems),
    metrics: parseMetrics(env, problems),
  };
  throwIfProblems(problems);
  return deepFreeze(config);
}

export function requireRepository(config: BackupConfig): RepositoryConfig {
  if (config.repository === undefined) {
    throw new PmsError(
      'PMS_ERR_CONFIG',
      'BACKUP_REPOSITORY is not set: use s3://bucket/prefix or file:///absolute/path (or set S3_BUCKET)',
    );
  }
  return config.repository;
}

/**
 * The disaster-recovery repository for `pms-backup copy --to URL` and monitor's DR lag check:
 * the same rules as BACKUP_REPOSITORY, with credentials, region and endpoint from BACKUP_DR_*
 * (a second account or region must never borrow the primary's credentials by accident).
 */
export interface DrConfig {
  readonly repository: RepositoryConfig;
  readonly maxLagHours: number;
}

export function loadDrConfig(env: Env, url: string | undefined): DrConfig | undefined {
  const target = url ?? (env['BACKUP_DR_REPOSITORY'] || undefined);
  if (target === undefined) return undefined;
  const p = new Problems();
  const mapped: Record<string, string | undefined> = {
    BACKUP_REPOSITORY: target,
    AWS_REGION: env['BACKUP_DR_AWS_REGION'],
    AWS_ACCESS_KEY_ID: env['BACKUP_DR_AWS_ACCESS_KEY_ID'],
    AWS_ACCESS_KEY_ID_FILE: env['BACKUP_DR_AWS_ACCESS_KEY_ID_FILE'],
    AWS_SECRET_ACCESS_KEY: env['BACKUP_DR_AWS_SECRET_ACCESS_KEY'],
    AWS_SECRET_ACCESS_KEY_FILE: env['BACKUP_DR_AWS_SECRET_ACCESS_KEY_FILE'],
    S3_ENDPOINT: env['BACKUP_DR_S3_ENDPOINT'],
    S3_FORCE_PATH_STYLE: env['BACKUP_DR_S3_FORCE_PATH_STYLE'],
  };
  const before = p.list.length;
  const repository = parseRepository(mapped, p, true);
  // Messages name the DR variables, not the primary ones they were mapped onto.
  for (let i = before; i < p.list.length; i++) {
    p.list[i] = (p.list[i] ?? '')
      .replace(/\b(AWS_REGION|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|S3_ENDPOINT|S3_FORCE_PATH_STYLE)\b/g, 'BACKUP_DR_$1')
      .replace(/\bBACKUP_REPOSITORY\b/g, url ? '--to' : 'BACKUP_DR_REPOSITORY');
  }
  const maxLagHours = p.parse(env, 'BACKUP_DR_MAX_LAG_HOURS', z.coerce.number().positive(), 26, 'use a positive number of hours');
  throwIfProblems(p);
  return deepFreeze({ repository: repository!, maxLagHours });
}
