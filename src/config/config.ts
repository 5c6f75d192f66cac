import { PmsError } from '../errors/catalogue.js';
import type { Env } from './env-source.js';
import { type MetricsConfig, parseMetrics } from './metrics-config.js';
import { type BackupFromStandby, type PostgresConfig, parseBackupFromStandby, parsePostgres } from './postgres-config.js';
import { Problems, deepFreeze, throwIfProblems } from './problems.js';
import type { Secret } from './secret.js';
import { SettingReader } from './setting-reader.js';
import { type Need, settingSpec } from './settings.js';
import { refuseUnknownVariables } from './unknown-variables.js';

export type { PostgresConfig } from './postgres-config.js';

export interface S3Settings {
  readonly bucket: string;
  readonly prefix: string;
  readonly region: string;
  readonly endpoint: string | undefined;
  readonly forcePathStyle: boolean;
  readonly accessKeyId: Secret | undefined;
  readonly secretAccessKey: Secret | undefined;
  /** S3 Object Lock retention every object is written with; undefined: none. */
  readonly objectLock?: ObjectLockSettings | undefined;
  /** How the client waits and retries; undefined: the defaults of the settings table. */
  readonly tuning?: S3ClientTuning | undefined;
}

/** BACKUP_S3_MAX_ATTEMPTS, _CONNECT_TIMEOUT_SECONDS, _REQUEST_TIMEOUT_SECONDS, _PART_SIZE_MIB (both repositories). */
export interface S3ClientTuning {
  readonly maxAttempts: number;
  readonly connectionTimeoutMs: number;
  /** Inactivity limit of one attempt, and of a download the reader is waiting on. */
  readonly socketTimeoutMs: number;
  readonly partSize: number;
}

function parseS3Tuning(settings: SettingReader): S3ClientTuning {
  return {
    maxAttempts: settings.get('BACKUP_S3_MAX_ATTEMPTS'),
    connectionTimeoutMs: Math.round(settings.get('BACKUP_S3_CONNECT_TIMEOUT_SECONDS') * 1000),
    socketTimeoutMs: Math.round(settings.get('BACKUP_S3_REQUEST_TIMEOUT_SECONDS') * 1000),
    partSize: settings.get('BACKUP_S3_PART_SIZE_MIB') * 1024 * 1024,
  };
}

/** BACKUP_S3_OBJECT_LOCK_MODE / _DAYS: the retention S3 enforces on each object version. */
export interface ObjectLockSettings {
  /** GOVERNANCE: a principal with s3:BypassGovernanceRetention may still delete; COMPLIANCE: nobody can before the date. */
  readonly mode: 'GOVERNANCE' | 'COMPLIANCE';
  /** Each object version is retained until its write time plus this many days. */
  readonly days: number;
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
  /** Armored secret key producers sign with. */
  readonly signingKeyFile: string | undefined;
  readonly signingPassphraseFile: string | undefined;
  /** Armored public keys consumers accept signatures from. */
  readonly trustedSignersFile: string | undefined;
  /** Trusted signers limited to wal/ (the database server's keys). */
  readonly walSignerFingerprints: readonly string[];
}

/** Thresholds of the seed's alert conditions, logging and audit identity (backup operations). */
export interface OperationsConfig {
  readonly logDir: string;
  readonly logLevel: 'info' | 'warn' | 'error';
  readonly maxAgeHours: number;
  readonly sizeDeviation: number;
  readonly keyExpiryWarnDays: number;
  readonly verifyMaxAgeDays: number;
  readonly walMaxAgeMinutes: number;
  /** zstd worker threads the database server uses to compress a base backup (0: none). */
  readonly baseBackupZstdWorkers: number;
  /** Segments wal-fetch's background prefetcher keeps spooled ahead of recovery (0: no prefetch). */
  readonly walPrefetch: number;
  /** Bound on the prefetch spool, segments being fetched included. */
  readonly walPrefetchMaxBytes: number;
  /** Socket directory of a throwaway server run apart by `pms-backup verify-server` (the verify pod's sidecar). */
  readonly verifyServerSocketDir: string | undefined;
  /** Kubernetes pod name (POD_NAME via the downward API), for audit records. */
  readonly podName: string | undefined;
  /** Each HA member's Patroni REST API (doctor and monitor show and check the cluster); empty: no HA check. */
  readonly patroniUrls: readonly string[];
  readonly maxReplicationLagSeconds: number;
}

export interface BackupConfig {
  readonly postgres: PostgresConfig;
  /** Where base-backup and create read (BACKUP_FROM_STANDBY, docs/ha.md). */
  readonly fromStandby: BackupFromStandby;
  readonly repository: RepositoryConfig | undefined;
  readonly keys: KeyConfig;
  readonly retentionDays: number;
  readonly operations: OperationsConfig;
  readonly metrics: MetricsConfig;
}

/** What a command needs; only these are required to be present (see `requiredFor` in settings.ts). */
export type ConfigNeeds = { readonly [N in Need]?: boolean };

/** The keys an encrypting command (create, base-backup, wal-push) is guaranteed to have. */
export interface EncryptionKeys {
  readonly publicKeyFile: string;
  readonly keyId: string;
}

/** The key a decrypting command (restore, verify, wal-fetch) is guaranteed to have. */
export interface DecryptionKeys {
  readonly privateKeyFile: string;
}

/** The key a signing command (every producer) is guaranteed to have. */
export interface SigningKeys {
  readonly signingKeyFile: string;
}

/** The trusted signers a reading command (every consumer) is guaranteed to have. */
export interface TrustKeys {
  readonly trustedSignersFile: string;
}

/**
 * The configuration as a command with `needs` sees it: what the needs require is present in the
 * type, because loadBackupConfig refused to start without it (the settings' `requiredFor`;
 * config-needs.unit.test.ts checks each field narrowed here against the table).
 */
export type BackupConfigFor<N extends ConfigNeeds> = BackupConfig &
  (N extends { readonly repository: true } ? { readonly repository: RepositoryConfig } : unknown) &
  (N extends { readonly encryption: true } ? { readonly keys: EncryptionKeys } : unknown) &
  (N extends { readonly decryption: true } ? { readonly keys: DecryptionKeys } : unknown) &
  (N extends { readonly signing: true } ? { readonly keys: SigningKeys } : unknown) &
  (N extends { readonly trust: true } ? { readonly keys: TrustKeys } : unknown);

function parseOperations(settings: SettingReader): OperationsConfig {
  return {
    logDir: settings.get('BACKUP_LOG_DIR'),
    logLevel: settings.get('BACKUP_LOG_LEVEL'),
    maxAgeHours: settings.get('BACKUP_MAX_AGE_HOURS'),
    sizeDeviation: settings.get('BACKUP_SIZE_DEVIATION'),
    keyExpiryWarnDays: settings.get('BACKUP_KEY_EXPIRY_WARN_DAYS'),
    verifyMaxAgeDays: settings.get('BACKUP_VERIFY_MAX_AGE_DAYS'),
    walMaxAgeMinutes: settings.get('BACKUP_WAL_MAX_AGE_MINUTES'),
    baseBackupZstdWorkers: settings.get('BACKUP_BASE_ZSTD_WORKERS'),
    walPrefetch: settings.get('BACKUP_WAL_PREFETCH'),
    walPrefetchMaxBytes: settings.get('BACKUP_WAL_PREFETCH_MAX_BYTES'),
    verifyServerSocketDir: settings.get('BACKUP_VERIFY_SERVER_SOCKET_DIR'),
    podName: settings.get('POD_NAME'),
    patroniUrls: settings.get('BACKUP_PATRONI_URLS') ?? [],
    maxReplicationLagSeconds: settings.get('BACKUP_MAX_REPLICATION_LAG_SECONDS'),
  };
}

/** The settings one repository is described by: the primary's, or the disaster-recovery copy's. */
interface RepositorySettings {
  readonly url: 'BACKUP_REPOSITORY' | 'BACKUP_DR_REPOSITORY';
  readonly region: 'AWS_REGION' | 'BACKUP_DR_AWS_REGION';
  readonly accessKeyId: 'AWS_ACCESS_KEY_ID' | 'BACKUP_DR_AWS_ACCESS_KEY_ID';
  readonly secretAccessKey: 'AWS_SECRET_ACCESS_KEY' | 'BACKUP_DR_AWS_SECRET_ACCESS_KEY';
  readonly endpoint: 'S3_ENDPOINT' | 'BACKUP_DR_S3_ENDPOINT';
  readonly forcePathStyle: 'S3_FORCE_PATH_STYLE' | 'BACKUP_DR_S3_FORCE_PATH_STYLE';
}

const PRIMARY: RepositorySettings = {
  url: 'BACKUP_REPOSITORY',
  region: 'AWS_REGION',
  accessKeyId: 'AWS_ACCESS_KEY_ID',
  secretAccessKey: 'AWS_SECRET_ACCESS_KEY',
  endpoint: 'S3_ENDPOINT',
  forcePathStyle: 'S3_FORCE_PATH_STYLE',
};

// A second account or region must never borrow the primary's credentials by accident, so the DR
// copy has a full set of its own (and no S3_BUCKET or AWS_DEFAULT_REGION fallbacks).
const DR: RepositorySettings = {
  url: 'BACKUP_DR_REPOSITORY',
  region: 'BACKUP_DR_AWS_REGION',
  accessKeyId: 'BACKUP_DR_AWS_ACCESS_KEY_ID',
  secretAccessKey: 'BACKUP_DR_AWS_SECRET_ACCESS_KEY',
  endpoint: 'BACKUP_DR_S3_ENDPOINT',
  forcePathStyle: 'BACKUP_DR_S3_FORCE_PATH_STYLE',
};

/** Object Lock of the primary repository (the DR copy is written by `copy` under its own bucket's rules). */
function parseObjectLock(settings: SettingReader, p: Problems, kind: 'file' | 's3'): ObjectLockSettings | undefined {
  const mode = settings.get('BACKUP_S3_OBJECT_LOCK_MODE');
  const days = settings.get('BACKUP_S3_OBJECT_LOCK_DAYS');
  const modeGiven = settings.given('BACKUP_S3_OBJECT_LOCK_MODE');
  const daysGiven = settings.given('BACKUP_S3_OBJECT_LOCK_DAYS');
  if (!modeGiven) {
    if (daysGiven) {
      p.add(
        'BACKUP_S3_OBJECT_LOCK_DAYS is set but BACKUP_S3_OBJECT_LOCK_MODE is not: set the mode too (governance or compliance), or unset both',
      );
    }
    return undefined;
  }
  if (kind === 'file') {
    p.add('BACKUP_S3_OBJECT_LOCK_MODE is set but BACKUP_REPOSITORY is a file:// repository: Object Lock is an S3 feature');
    return undefined;
  }
  if (!daysGiven) p.add('BACKUP_S3_OBJECT_LOCK_DAYS is not set: Object Lock needs the number of days each object is retained');
  if (mode === undefined || days === undefined) return undefined;
  return { mode: mode === 'governance' ? 'GOVERNANCE' : 'COMPLIANCE', days };
}

function parseRepository(
  settings: SettingReader,
  p: Problems,
  names: RepositorySettings,
  options: { readonly derivedUrl?: string | undefined; readonly regionFallback?: string | undefined; readonly to?: string } = {},
): RepositoryConfig | undefined {
  const accessKeyId = settings.get(names.accessKeyId);
  const secretAccessKey = settings.get(names.secretAccessKey);
  const forcePathStyle = settings.get(names.forcePathStyle);
  const endpoint = settings.get(names.endpoint);
  const location = settings.get(
    names.url,
    options.to === undefined ? { derivedDefault: options.derivedUrl } : { override: { label: '--to', value: options.to } },
  );
  const objectLock = names === PRIMARY ? parseObjectLock(settings, p, location?.kind ?? 's3') : undefined;
  if (location === undefined) return undefined;
  if (location.kind === 'file') return location;
  const region = settings.get(names.region) ?? options.regionFallback;
  if (region === undefined && endpoint === undefined) {
    p.add(`${names.region} is not set: it is required for an s3:// repository (e.g. eu-west-2)`);
  }
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    p.add(`${names.accessKeyId} and ${names.secretAccessKey} must be set together (or neither, to use the default credential chain)`);
  }
  return {
    kind: 's3',
    url: location.url,
    s3: {
      bucket: location.bucket,
      prefix: location.prefix,
      // Any value will do for an S3-compatible store at S3_ENDPOINT; the SDK insists on one.
      region: region ?? 'us-east-1',
      endpoint,
      forcePathStyle,
      accessKeyId,
      secretAccessKey,
      objectLock,
      tuning: parseS3Tuning(settings),
    },
  };
}

function parseKeys(settings: SettingReader): KeyConfig {
  return {
    publicKeyFile: settings.get('BACKUP_GPG_PUBLIC_KEY_FILE'),
    keyId: settings.get('BACKUP_GPG_KEY_ID'),
    privateKeyFile: settings.get('BACKUP_GPG_PRIVATE_KEY_FILE'),
    passphraseFile: settings.get('BACKUP_GPG_PASSPHRASE_FILE'),
    signingKeyFile: settings.get('BACKUP_SIGNING_KEY_FILE'),
    signingPassphraseFile: settings.get('BACKUP_SIGNING_PASSPHRASE_FILE'),
    trustedSignersFile: settings.get('BACKUP_TRUSTED_SIGNERS_FILE'),
    walSignerFingerprints: settings.get('BACKUP_WAL_SIGNER_FINGERPRINTS') ?? [],
  };
}

/**
 * Parses and validates the environment once, at the edge. Every problem is reported in one
 * error (PMS_ERR_CONFIG, exit 2); secret values never appear in it. A BACKUP_* or POSTGRES_*
 * variable that is no setting is one of those problems. The result is frozen, and typed by
 * `needs`: a command needing encryption gets `keys.publicKeyFile: string`.
 */
export function loadBackupConfig<const N extends ConfigNeeds = Record<never, never>>(env: Env, needs?: N): BackupConfigFor<N> {
  const problems = new Problems();
  const settings = new SettingReader(env, problems);
  refuseUnknownVariables(env, problems, 'pms-backup', ['BACKUP_', 'POSTGRES_']);
  const postgres = parsePostgres(settings, problems, { connects: needs?.postgres === true });
  const config: BackupConfig = {
    postgres,
    fromStandby: parseBackupFromStandby(settings, postgres),
    repository: parseRepository(settings, problems, PRIMARY, {
      derivedUrl: s3BucketUrl(settings.get('S3_BUCKET')),
      regionFallback: settings.get('AWS_DEFAULT_REGION'),
    }),
    keys: parseKeys(settings),
    retentionDays: settings.get('BACKUP_RETENTION_DAYS'),
    operations: parseOperations(settings),
    metrics: parseMetrics(settings, problems),
  };
  settings.requireFor(needs ?? {});
  throwIfProblems(problems);
  // Sound because requireFor refused every missing setting the needs narrow to present.
  return deepFreeze(config) as BackupConfigFor<N>;
}

function s3BucketUrl(bucket: string | undefined): string | undefined {
  return bucket === undefined ? undefined : `s3://${bucket}`;
}

export function requireRepository(config: BackupConfig): RepositoryConfig {
  if (config.repository === undefined) {
    throw new PmsError('PMS_ERR_CONFIG', `BACKUP_REPOSITORY is not set: ${settingSpec('BACKUP_REPOSITORY').missing}`);
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
  const p = new Problems();
  const settings = new SettingReader(env, p);
  const repository = parseRepository(settings, p, DR, url === undefined ? {} : { to: url });
  // Without a DR repository there is nothing to copy to or check, as before the table existed.
  if (url === undefined && !settings.given('BACKUP_DR_REPOSITORY')) return undefined;
  const maxLagHours = settings.get('BACKUP_DR_MAX_LAG_HOURS');
  throwIfProblems(p);
  return deepFreeze({ repository: repository!, maxLagHours });
}
