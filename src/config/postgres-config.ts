import type { Problems } from './problems.js';
import type { Secret } from './secret.js';
import type { SettingReader } from './setting-reader.js';
import type { BackupFromStandby, SslMode } from './setting-schemas.js';

export type { BackupFromStandby, SslMode } from './setting-schemas.js';

/** One server of POSTGRES_HOST / POSTGRES_PORT. */
export interface PostgresEndpoint {
  readonly host: string;
  readonly port: number;
}

export interface PostgresConfig {
  /** The first (or only) server: single-server code and messages use it. */
  readonly host: string;
  readonly port: number;
  /**
   * Every server of a multi-host POSTGRES_HOST, in order (libpq's meaning: tried one after the
   * other). Undefined or one entry: just host:port, used as it is (no primary check).
   */
  readonly endpoints?: readonly PostgresEndpoint[] | undefined;
  readonly database: string;
  readonly user: string | undefined;
  readonly password: Secret | undefined;
  readonly sslmode: SslMode;
  readonly sslrootcert: string | undefined;
}

/** The servers a configuration names (at least one). */
export function endpointsOf(config: PostgresConfig): readonly PostgresEndpoint[] {
  return config.endpoints && config.endpoints.length > 0 ? config.endpoints : [{ host: config.host, port: config.port }];
}

/** The configuration narrowed to one of its servers (what a connection to it uses). */
export function pinnedTo(config: PostgresConfig, endpoint: PostgresEndpoint): PostgresConfig {
  return { ...config, host: endpoint.host, port: endpoint.port, endpoints: undefined };
}

/** host:port of every server, for messages. */
export function describeEndpoints(config: PostgresConfig): string {
  return endpointsOf(config)
    .map((e) => `${e.host}:${e.port}`)
    .join(', ');
}

/** The problem when a verifying sslmode has no CA to verify the server with. */
export function missingRootCert(sslmode: SslMode): string {
  return `POSTGRES_SSLMODE=${sslmode} needs POSTGRES_SSLROOTCERT: set it to the CA certificate file that signed the server's certificate (or, accepting an insecure connection, name a weaker POSTGRES_SSLMODE explicitly)`;
}

/**
 * The seed's POSTGRES_* variables; shared by pms-backup and pms-telemetry. `connects`: the command
 * talks to the server, so the default verify-full must have its CA now rather than fail at the
 * first connection; a command that never connects (list, wal-push) is not refused for it, unless
 * POSTGRES_SSLMODE was set explicitly. A Unix-socket host needs no TLS and so no CA.
 *
 * POSTGRES_HOST may list servers (h1,h2,h3) and POSTGRES_PORT give one port for all or one per
 * host, as libpq reads PGHOST and PGPORT; any other count of ports is a problem.
 */
export function parsePostgres(settings: SettingReader, p: Problems, options: { readonly connects?: boolean } = {}): PostgresConfig {
  const hosts = settings.get('POSTGRES_HOST');
  const ports = settings.get('POSTGRES_PORT');
  const before = p.list.length;
  const sslmode = settings.get('POSTGRES_SSLMODE');
  // An invalid POSTGRES_SSLMODE is one problem; the default it falls back to is not another.
  const valid = p.list.length === before;
  const sslrootcert = settings.get('POSTGRES_SSLROOTCERT');
  const verifies = sslmode === 'verify-full' || sslmode === 'verify-ca';
  const checked = valid && (options.connects === true || settings.given('POSTGRES_SSLMODE'));
  if (verifies && checked && sslrootcert === undefined && hosts.some((host) => !host.startsWith('/'))) p.add(missingRootCert(sslmode));
  if (ports.length !== 1 && ports.length !== hosts.length) {
    p.add(
      `POSTGRES_PORT lists ${ports.length} ports for ${hosts.length} POSTGRES_HOST ${hosts.length === 1 ? 'entry' : 'entries'}: give one port for every host, or exactly one per host in the same order`,
    );
  }
  const endpoints = hosts.map((host, i) => ({ host, port: ports[i] ?? ports[0] ?? 5432 }));
  const first = endpoints[0] ?? { host: 'localhost', port: 5432 };
  return {
    host: first.host,
    port: first.port,
    endpoints: endpoints.length > 1 ? endpoints : undefined,
    database: settings.get('POSTGRES_DB'),
    user: settings.get('POSTGRES_USER'),
    password: settings.get('POSTGRES_PASSWORD'),
    sslmode,
    sslrootcert,
  };
}

/**
 * BACKUP_FROM_STANDBY: where base-backup and create read. Unset, a list of servers means
 * "prefer" (spare the primary when a standby answers), one server "no" (it is what was named).
 */
export function parseBackupFromStandby(settings: SettingReader, postgres: PostgresConfig): BackupFromStandby {
  return settings.get('BACKUP_FROM_STANDBY') ?? (endpointsOf(postgres).length > 1 ? 'prefer' : 'no');
}
