import { z } from 'zod';
import {
  LOG_LEVELS,
  SSL_MODES,
  absolutePathSchema,
  boolSchema,
  cidrListSchema,
  daysSchema,
  endpointSchema,
  instanceSchema,
  intSchema,
  fingerprintListSchema,
  keyIdSchema,
  BACKUP_FROM_STANDBY_MODES,
  hostListSchema,
  portListSchema,
  portSchema,
  positiveSchema,
  repositoryUrlSchema,
  telemetryRetentionSchema,
  textSchema,
  urlListSchema,
} from './setting-schemas.js';

export type Program = 'pms-backup' | 'pms-telemetry';

/**
 * What a command may need; a setting required for a need is checked only for commands that have it.
 * 'postgres': the command connects to the POSTGRES_* server (its TLS settings are checked).
 */
export type Need = 'repository' | 'encryption' | 'decryption' | 'signing' | 'trust' | 'postgres';

export type Group = 'postgres' | 'repository' | 'keys' | 'operations' | 'dr' | 'metrics' | 'telemetry' | 'postgres-image';

export interface SettingSpec {
  /** Reads the raw string (an empty string counts as unset). */
  readonly schema: z.ZodType;
  /** The raw default, parsed by the schema like a given value, so the table cannot hold an invalid one. */
  readonly default?: string;
  /** The default when it is derived from another setting (shown in --help and README instead of a value). */
  readonly defaultText?: string;
  /** A Secret: never printed, never echoed in a problem; may instead be given as NAME_FILE (a path). */
  readonly secret?: true;
  /** Not secret, but may come from a mounted file as NAME_FILE (e.g. a key id kept in a Secret). */
  readonly file?: true;
  readonly group: Group;
  /** The programs that read it; empty for variables of the postgres image that share its container. */
  readonly readBy: readonly Program[];
  /** Commands with this need refuse to start without it. */
  readonly requiredFor?: Need;
  /** After "NAME is not set: ", for a required setting. */
  readonly missing?: string;
  /** After "NAME=value is invalid: ". */
  readonly hint?: string;
  /** One line for --help. */
  readonly help: string;
}

const BACKUP = ['pms-backup'] as const;
const TELEMETRY = ['pms-telemetry'] as const;
const BOTH = ['pms-backup', 'pms-telemetry'] as const;
const NOBODY = [] as const;

const REPOSITORY_HINT = 'use s3://bucket/optional/prefix or file:///absolute/path';
const POSITIVE = (unit: string) => `use a positive number of ${unit}`;

/**
 * Every environment variable pms-backup and pms-telemetry read: the one place a setting is
 * named, typed, defaulted and explained. The parsers, `pms-backup --help`, the README table
 * check and the refusal of unknown BACKUP_* / POSTGRES_* / TELEMETRY_* names all come from here.
 */
export const SETTINGS = {
  // PostgreSQL: shared by both programs (one table, so neither refuses what the other reads).
  POSTGRES_HOST: {
    schema: hostListSchema,
    default: 'localhost',
    group: 'postgres',
    readBy: BOTH,
    help: 'database server host, address or socket directory; a cluster as h1,h2,h3 (writers find its primary, docs/ha.md)',
  },
  POSTGRES_PORT: {
    schema: portListSchema,
    default: '5432',
    group: 'postgres',
    readBy: BOTH,
    hint: 'use a TCP port number 1-65535, or one per POSTGRES_HOST entry as 5432,5433,5434',
    help: 'database server port, or one per POSTGRES_HOST entry (libpq PGPORT)',
  },
  POSTGRES_DB: { schema: textSchema, default: 'patient_telemetry', group: 'postgres', readBy: BOTH, help: 'database to back up / serve' },
  POSTGRES_USER: { schema: textSchema, file: true, group: 'postgres', readBy: BOTH, help: 'login role (libpq default: the OS user)' },
  POSTGRES_PASSWORD: { schema: textSchema, secret: true, group: 'postgres', readBy: BOTH, help: 'password of that role' },
  POSTGRES_SSLMODE: {
    schema: z.enum(SSL_MODES),
    // Verified TLS unless the operator names a weaker mode (then doctor and the log say insecure).
    default: 'verify-full',
    group: 'postgres',
    readBy: BOTH,
    hint: `use one of ${SSL_MODES.join(', ')}`,
    help: 'libpq sslmode; verify-ca and verify-full need POSTGRES_SSLROOTCERT; weaker modes are insecure; ignored for a Unix socket',
  },
  POSTGRES_SSLROOTCERT: {
    schema: textSchema,
    group: 'postgres',
    readBy: BOTH,
    help: 'CA certificate file the server certificate must chain to',
  },
  BACKUP_FROM_STANDBY: {
    schema: z.enum(BACKUP_FROM_STANDBY_MODES),
    defaultText: 'prefer with several POSTGRES_HOST entries, else no',
    group: 'postgres',
    readBy: BACKUP,
    hint: `use one of ${BACKUP_FROM_STANDBY_MODES.join(', ')}`,
    help: 'base-backup and create read from a standby of the POSTGRES_HOST list (require: refuse without one), sparing the primary',
  },
  // Read by the postgres container image, whose environment archive_command (wal-push) inherits.
  POSTGRES_INITDB_ARGS: { schema: textSchema, group: 'postgres-image', readBy: NOBODY, help: 'initdb options of the postgres image' },
  POSTGRES_INITDB_WALDIR: { schema: textSchema, group: 'postgres-image', readBy: NOBODY, help: 'pg_wal location of the postgres image' },
  POSTGRES_HOST_AUTH_METHOD: { schema: textSchema, group: 'postgres-image', readBy: NOBODY, help: 'pg_hba method of the postgres image' },

  // The repository.
  BACKUP_REPOSITORY: {
    schema: repositoryUrlSchema,
    defaultText: 's3://$S3_BUCKET',
    group: 'repository',
    readBy: BACKUP,
    requiredFor: 'repository',
    missing: 'use s3://bucket/prefix or file:///absolute/path (or set S3_BUCKET)',
    hint: REPOSITORY_HINT,
    help: 's3://bucket/optional/prefix or file:///absolute/path (the directory must exist)',
  },
  S3_BUCKET: { schema: textSchema, group: 'repository', readBy: BACKUP, help: 'bucket, when BACKUP_REPOSITORY is not set' },
  AWS_REGION: {
    schema: textSchema,
    defaultText: '$AWS_DEFAULT_REGION',
    group: 'repository',
    readBy: BACKUP,
    help: 'region of an s3:// repository (required unless S3_ENDPOINT is set)',
  },
  AWS_DEFAULT_REGION: { schema: textSchema, group: 'repository', readBy: BACKUP, help: 'the region when AWS_REGION is not set' },
  AWS_ACCESS_KEY_ID: {
    schema: textSchema,
    secret: true,
    defaultText: 'AWS default chain',
    group: 'repository',
    readBy: BACKUP,
    help: 'S3 access key id; set with AWS_SECRET_ACCESS_KEY or neither',
  },
  AWS_SECRET_ACCESS_KEY: {
    schema: textSchema,
    secret: true,
    defaultText: 'AWS default chain',
    group: 'repository',
    readBy: BACKUP,
    help: 'S3 secret access key',
  },
  S3_ENDPOINT: {
    schema: endpointSchema,
    defaultText: 'AWS',
    group: 'repository',
    readBy: BACKUP,
    hint: 'use a URL such as https://minio.example:9000',
    help: 'endpoint of an S3-compatible store (MinIO, Ceph RGW, s3rver)',
  },
  S3_FORCE_PATH_STYLE: {
    schema: boolSchema,
    default: 'false',
    group: 'repository',
    readBy: BACKUP,
    hint: 'use true or false',
    help: 'path-style bucket addressing (most S3-compatible stores)',
  },
  BACKUP_S3_OBJECT_LOCK_MODE: {
    schema: z.enum(['governance', 'compliance']),
    defaultText: 'unset: no Object Lock',
    group: 'repository',
    readBy: BACKUP,
    hint: 'use governance or compliance (or leave it unset for no Object Lock)',
    help: 'S3 Object Lock mode every object version is written with (the bucket must have Object Lock enabled, docs/s3-bucket.md)',
  },
  BACKUP_S3_OBJECT_LOCK_DAYS: {
    schema: intSchema(1, 36500),
    group: 'repository',
    readBy: BACKUP,
    hint: 'use a whole number of days (1-36500)',
    help: 'days each version is retained from its write, required with the mode; prune deletes a version only once they have passed',
  },

  // How the S3 client waits and retries (docs/storage.md, "Timeouts and retries"); for both repositories.
  BACKUP_S3_MAX_ATTEMPTS: {
    schema: intSchema(1, 20),
    default: '3',
    group: 'repository',
    readBy: BACKUP,
    hint: 'use a whole number of attempts from 1 to 20',
    help: 'attempts per S3 request against 5xx, resets and timeouts (the first and its retries, with exponential backoff) before a command fails; SlowDown is retried for up to BACKUP_S3_REQUEST_TIMEOUT_SECONDS instead',
  },
  BACKUP_S3_CONNECT_TIMEOUT_SECONDS: {
    schema: z.coerce.number().min(0.1).max(600),
    default: '5',
    group: 'repository',
    readBy: BACKUP,
    hint: 'use a number of seconds between 0.1 and 600',
    help: 'TCP connect timeout of one attempt',
  },
  BACKUP_S3_REQUEST_TIMEOUT_SECONDS: {
    schema: z.coerce.number().min(0.1).max(3600),
    default: '120',
    group: 'repository',
    readBy: BACKUP,
    hint: 'use a number of seconds between 0.1 and 3600',
    help: 'an attempt fails (and is retried) after this long without a byte sent or received; a download the reader is waiting on fails after this long without a byte',
  },
  BACKUP_S3_PART_SIZE_MIB: {
    schema: intSchema(5, 5120),
    default: '64',
    group: 'repository',
    readBy: BACKUP,
    hint: 'use a whole number of MiB from 5 (the S3 minimum) to 5120',
    help: 'multipart part size; S3 allows 10,000 parts per object, and memory per upload is about 4 parts',
  },

  // OpenPGP keys.
  BACKUP_GPG_PUBLIC_KEY_FILE: {
    schema: textSchema,
    group: 'keys',
    readBy: BACKUP,
    requiredFor: 'encryption',
    missing: 'point it at the armored public key(s) to encrypt to',
    help: 'armored public key(s); backups are encrypted to every key in the file',
  },
  BACKUP_GPG_KEY_ID: {
    schema: keyIdSchema,
    file: true,
    group: 'keys',
    readBy: BACKUP,
    requiredFor: 'encryption',
    missing: 'name the key backups must be encrypted to',
    hint: 'use a hex key ID or fingerprint (16 or 40 hex digits)',
    help: 'must match one of those keys: a wrong key file is an error',
  },
  BACKUP_GPG_PRIVATE_KEY_FILE: {
    schema: textSchema,
    group: 'keys',
    readBy: BACKUP,
    requiredFor: 'decryption',
    missing: 'restore needs the armored private key(s)',
    help: 'armored private key(s) for restore, verify and wal-fetch; may hold several',
  },
  BACKUP_GPG_PASSPHRASE_FILE: {
    schema: textSchema,
    group: 'keys',
    readBy: BACKUP,
    help: 'file holding the private key passphrase, if any',
  },
  BACKUP_SIGNING_KEY_FILE: {
    schema: textSchema,
    group: 'keys',
    readBy: BACKUP,
    requiredFor: 'signing',
    missing: 'this command signs what it writes: give the armored OpenPGP secret key it signs with (docs/key-rotation.md)',
    help: 'armored secret key producers sign with (backups, WAL, audit and verification records)',
  },
  BACKUP_SIGNING_PASSPHRASE_FILE: {
    schema: textSchema,
    group: 'keys',
    readBy: BACKUP,
    help: 'file holding the signing key passphrase, if any',
  },
  BACKUP_TRUSTED_SIGNERS_FILE: {
    schema: textSchema,
    group: 'keys',
    readBy: BACKUP,
    requiredFor: 'trust',
    missing: 'this command reads the repository and accepts only signed objects: give the armored public keys of the signers it trusts',
    help: 'armored public keys whose signatures consumers accept (jobs key, WAL key, retired keys)',
  },
  BACKUP_WAL_SIGNER_FINGERPRINTS: {
    schema: fingerprintListSchema,
    group: 'keys',
    readBy: BACKUP,
    hint: 'use full 40-hex-digit fingerprints, comma-separated',
    help: 'trusted signers that may sign only WAL (the database server keys): their signature on anything else is refused',
  },

  // Retention, logs, monitor thresholds.
  BACKUP_RETENTION_DAYS: {
    schema: daysSchema,
    default: '30',
    group: 'operations',
    readBy: BACKUP,
    hint: 'use a whole number of days (0-36500)',
    help: 'prune deletes older complete backups (never the newest, nor the newest verified)',
  },
  BACKUP_LOG_DIR: {
    schema: absolutePathSchema,
    default: '/var/log/pms',
    group: 'operations',
    readBy: BACKUP,
    hint: 'use an absolute directory path',
    help: 'backup_, monitoring_, verification_YYYYMMDD.log (JSON lines, also on stderr)',
  },
  BACKUP_LOG_LEVEL: {
    schema: z.enum(['info', 'warn', 'error']),
    default: 'info',
    group: 'operations',
    readBy: BACKUP,
    hint: 'use info, warn or error',
    help: 'lowest level written to the JSON log (file, and stderr when it is not a terminal)',
  },
  BACKUP_MAX_AGE_HOURS: {
    schema: positiveSchema,
    default: '25',
    group: 'operations',
    readBy: BACKUP,
    hint: POSITIVE('hours'),
    help: 'monitor: the newest complete backup is at most this old',
  },
  BACKUP_SIZE_DEVIATION: {
    schema: positiveSchema,
    default: '0.5',
    group: 'operations',
    readBy: BACKUP,
    hint: 'use a positive ratio such as 0.5 (50 %)',
    help: 'monitor: largest change in size of a logical backup from the previous one, as a ratio',
  },
  BACKUP_KEY_EXPIRY_WARN_DAYS: {
    schema: daysSchema,
    default: '30',
    group: 'operations',
    readBy: BACKUP,
    hint: 'use a whole number of days',
    help: 'monitor: warn this long before an encryption key expires',
  },
  BACKUP_PATRONI_URLS: {
    schema: urlListSchema,
    group: 'operations',
    readBy: BACKUP,
    hint: 'use http(s)://host:port of each member, comma-separated',
    help: "doctor, monitor: each member's Patroni REST API (http://host:8008,...): show and check the HA cluster",
  },
  BACKUP_MAX_REPLICATION_LAG_SECONDS: {
    schema: positiveSchema,
    default: '30',
    group: 'operations',
    readBy: BACKUP,
    hint: POSITIVE('seconds'),
    help: 'doctor, monitor: longest a standby may be behind the leader (with BACKUP_PATRONI_URLS)',
  },
  BACKUP_VERIFY_MAX_AGE_DAYS: {
    schema: positiveSchema,
    default: '8',
    group: 'operations',
    readBy: BACKUP,
    hint: POSITIVE('days'),
    help: 'monitor: the newest successful verification is at most this old',
  },
  BACKUP_WAL_MAX_AGE_MINUTES: {
    schema: positiveSchema,
    default: '15',
    group: 'operations',
    readBy: BACKUP,
    hint: POSITIVE('minutes'),
    help: 'monitor: the newest archived WAL file is at most this old',
  },
  BACKUP_BASE_ZSTD_WORKERS: {
    schema: intSchema(0, 64),
    default: '2',
    group: 'operations',
    readBy: BACKUP,
    hint: 'use a whole number of threads from 0 to 64',
    help: 'zstd threads the database server spends compressing a base backup (0: in the backend itself)',
  },
  BACKUP_WAL_PREFETCH: {
    schema: intSchema(0, 256),
    default: '32',
    group: 'operations',
    readBy: BACKUP,
    hint: 'use a whole number of segments from 0 to 256',
    help: 'wal-fetch: segments to fetch, verify and spool ahead of recovery in the background (0: off, one fetch per request)',
  },
  BACKUP_WAL_PREFETCH_MAX_BYTES: {
    schema: intSchema(16 * 1024 * 1024, 2 ** 40),
    default: String(512 * 1024 * 1024),
    group: 'operations',
    readBy: BACKUP,
    hint: 'use a whole number of bytes, at least 16777216 (one segment)',
    help: 'wal-fetch: most bytes the prefetch spool (pg_wal/.pms-prefetch) may hold, counting segments in flight',
  },
  BACKUP_VERIFY_SERVER_SOCKET_DIR: {
    schema: absolutePathSchema,
    group: 'operations',
    readBy: BACKUP,
    hint: 'use an absolute directory path',
    help: 'verify restores into the server `pms-backup verify-server` runs there (another uid: the verify pod) instead of starting one',
  },
  POD_NAME: { schema: textSchema, group: 'operations', readBy: BACKUP, help: 'recorded in audit records (Kubernetes downward API)' },

  // The disaster-recovery copy: its own credentials, never the primary's by accident.
  BACKUP_DR_REPOSITORY: {
    schema: repositoryUrlSchema,
    group: 'dr',
    readBy: BACKUP,
    hint: REPOSITORY_HINT,
    help: 'second repository for `copy` (default of --to) and monitor’s DR lag check',
  },
  BACKUP_DR_AWS_REGION: { schema: textSchema, group: 'dr', readBy: BACKUP, help: 'region of the DR repository' },
  BACKUP_DR_AWS_ACCESS_KEY_ID: { schema: textSchema, secret: true, group: 'dr', readBy: BACKUP, help: 'DR access key id' },
  BACKUP_DR_AWS_SECRET_ACCESS_KEY: { schema: textSchema, secret: true, group: 'dr', readBy: BACKUP, help: 'DR secret access key' },
  BACKUP_DR_S3_ENDPOINT: {
    schema: endpointSchema,
    group: 'dr',
    readBy: BACKUP,
    hint: 'use a URL such as https://minio.example:9000',
    help: 'endpoint of an S3-compatible DR store',
  },
  BACKUP_DR_S3_FORCE_PATH_STYLE: {
    schema: boolSchema,
    default: 'false',
    group: 'dr',
    readBy: BACKUP,
    hint: 'use true or false',
    help: 'path-style addressing for the DR store',
  },
  BACKUP_DR_MAX_LAG_HOURS: {
    schema: z.coerce.number().positive(),
    default: '26',
    group: 'dr',
    readBy: BACKUP,
    hint: POSITIVE('hours'),
    help: 'monitor: longest a complete backup may be missing from the DR repository',
  },

  // Metrics (docs/monitoring.md).
  PUSHGATEWAY_URL: {
    schema: textSchema,
    defaultText: 'unset: no push',
    group: 'metrics',
    readBy: BACKUP,
    help: 'Pushgateway base URL without credentials, e.g. http://pushgateway.monitoring:9091',
  },
  PUSHGATEWAY_INSTANCE: {
    schema: instanceSchema,
    defaultText: '$POSTGRES_DB',
    group: 'metrics',
    readBy: BACKUP,
    hint: 'use 1-128 letters, digits, _ . : or - (a stable name such as the database name, never a pod name)',
    help: 'instance label: stable between runs, never a pod name',
  },
  PUSHGATEWAY_TIMEOUT_SECONDS: {
    schema: z.coerce.number().min(0.05).max(60),
    default: '5',
    group: 'metrics',
    readBy: BACKUP,
    hint: 'use a number of seconds between 0.05 and 60',
    help: 'budget for the whole push; a slow gateway never holds up a backup',
  },
  PUSHGATEWAY_USERNAME: {
    schema: textSchema,
    file: true,
    group: 'metrics',
    readBy: BACKUP,
    help: 'basic-auth user, with PUSHGATEWAY_PASSWORD',
  },
  PUSHGATEWAY_PASSWORD: { schema: textSchema, secret: true, group: 'metrics', readBy: BACKUP, help: 'basic-auth password' },

  // pms-telemetry (docs/telemetry.md).
  TELEMETRY_HOST: { schema: textSchema, default: '0.0.0.0', group: 'telemetry', readBy: TELEMETRY, help: 'address the API listens on' },
  TELEMETRY_PORT: {
    schema: portSchema,
    default: '8080',
    group: 'telemetry',
    readBy: TELEMETRY,
    hint: 'use a TCP port number 1-65535',
    help: 'port the API listens on',
  },
  // Its own port, so the NetworkPolicy can let only Prometheus reach it (the API port is public).
  TELEMETRY_METRICS_PORT: {
    schema: portSchema,
    default: '9464',
    group: 'telemetry',
    readBy: TELEMETRY,
    hint: 'use a TCP port number 1-65535 other than TELEMETRY_PORT',
    help: 'port serving /metrics (Prometheus only), on TELEMETRY_HOST',
  },
  // Failed authentication is throttled per client address: behind a reverse proxy that address
  // comes from X-Forwarded-For, but only when the connection is from one of these proxies.
  TELEMETRY_TRUSTED_PROXIES: {
    schema: cidrListSchema,
    group: 'telemetry',
    readBy: TELEMETRY,
    hint: 'use a comma-separated list of IP addresses or CIDR blocks, e.g. 10.0.0.0/8',
    help: 'reverse proxies (IPs/CIDRs) whose X-Forwarded-For names the client; unset: trust none',
  },
  TELEMETRY_RETENTION_DAYS: {
    schema: telemetryRetentionSchema,
    default: 'never',
    group: 'telemetry',
    readBy: TELEMETRY,
    hint: 'use a whole number of days from 31 to 36500, or never (the default)',
    help: 'retention drops monthly partitions older than this; never by default (deletion is deliberate)',
  },
  TELEMETRY_PARTITIONS_AHEAD_MONTHS: {
    schema: intSchema(1, 24),
    default: '3',
    group: 'telemetry',
    readBy: TELEMETRY,
    hint: 'use a whole number of months from 1 to 24',
    help: 'monthly partitions created ahead',
  },
  TELEMETRY_RATE_LIMIT_PER_MINUTE: {
    schema: intSchema(1, 1_000_000),
    default: '120',
    group: 'telemetry',
    readBy: TELEMETRY,
    hint: 'use a whole number of requests per minute per device',
    help: 'sustained requests per device per minute (per replica)',
  },
  TELEMETRY_RATE_LIMIT_BURST: {
    schema: intSchema(1, 1_000_000),
    default: '20',
    group: 'telemetry',
    readBy: TELEMETRY,
    hint: 'use a whole number of requests',
    help: 'requests a quiet device may send back-to-back',
  },
  // A ward dashboard opening shows a few dozen patients at once, then refreshes them now and
  // then: a larger burst than a device's, the same order of sustained rate.
  TELEMETRY_READER_RATE_LIMIT_PER_MINUTE: {
    schema: intSchema(1, 1_000_000),
    default: '300',
    group: 'telemetry',
    readBy: TELEMETRY,
    hint: 'use a whole number of requests per minute per reader',
    help: 'sustained reads per reader token per minute (per replica)',
  },
  TELEMETRY_READER_RATE_LIMIT_BURST: {
    schema: intSchema(1, 1_000_000),
    default: '60',
    group: 'telemetry',
    readBy: TELEMETRY,
    hint: 'use a whole number of requests',
    help: 'reads a quiet reader may send back-to-back',
  },
  // 1 MiB: a batch of 1000 readings is about 150 KB, so this leaves room without inviting abuse.
  TELEMETRY_BODY_LIMIT_BYTES: {
    schema: intSchema(1024, 64 * 1024 * 1024),
    default: '1048576',
    group: 'telemetry',
    readBy: TELEMETRY,
    hint: 'use a number of bytes from 1024',
    help: 'largest request body, counted as it streams',
  },
  TELEMETRY_MAX_BATCH_READINGS: {
    schema: intSchema(1, 10_000),
    default: '1000',
    group: 'telemetry',
    readBy: TELEMETRY,
    hint: 'use a whole number from 1 to 10000',
    help: 'most readings in one batch',
  },
  TELEMETRY_POOL_MAX: {
    schema: intSchema(1, 200),
    default: '10',
    group: 'telemetry',
    readBy: TELEMETRY,
    hint: 'use a whole number of connections from 1 to 200',
    help: 'database connections per replica',
  },
  TELEMETRY_STATEMENT_TIMEOUT_MS: {
    schema: intSchema(100, 600_000),
    default: '10000',
    group: 'telemetry',
    readBy: TELEMETRY,
    hint: 'use milliseconds from 100 to 600000',
    help: 'statement_timeout of every API query',
  },
  TELEMETRY_SHUTDOWN_TIMEOUT_MS: {
    schema: intSchema(0, 600_000),
    default: '25000',
    group: 'telemetry',
    readBy: TELEMETRY,
    hint: 'use milliseconds from 0 to 600000 (keep it below terminationGracePeriodSeconds)',
    help: 'time in-flight requests get on SIGTERM',
  },
  TELEMETRY_LOG_LEVEL: {
    schema: z.enum(LOG_LEVELS),
    default: 'info',
    group: 'telemetry',
    readBy: TELEMETRY,
    hint: `use one of ${LOG_LEVELS.join(', ')}`,
    help: 'pino log level',
  },
} as const satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;

export function settingSpec(name: SettingName): SettingSpec {
  return SETTINGS[name];
}

export function settingNames(): SettingName[] {
  return Object.keys(SETTINGS) as SettingName[];
}

export function settingsReadBy(program: Program): SettingName[] {
  return settingNames().filter((name) => (settingSpec(name).readBy as readonly Program[]).includes(program));
}

/** The default as docs show it: a literal value, or what it is derived from; '' when there is none. */
export function defaultText(spec: SettingSpec): string {
  return spec.default ?? spec.defaultText ?? '';
}

/** Names a program accepts: every setting (whichever program reads it) and the NAME_FILE of those that allow one. */
export function acceptedNames(): Set<string> {
  const names = new Set<string>();
  for (const name of settingNames()) {
    names.add(name);
    const spec = settingSpec(name);
    if (spec.secret || spec.file) names.add(`${name}_FILE`);
  }
  return names;
}
