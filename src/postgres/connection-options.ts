import { readFileSync } from 'node:fs';
import type { ClientConfig } from 'pg';
import { type PostgresConfig, endpointsOf, missingRootCert } from '../config/postgres-config.js';
import { PmsError } from '../errors/catalogue.js';
import { childEnv } from '../process/child-env.js';
import type { SessionTarget } from './session-target.js';
import { isUnixSocketHost, noteTransport } from './transport-security.js';

export interface ConnectOverrides {
  readonly database?: string;
  readonly applicationName?: string;
  /** A walsender connection that also accepts SQL (BASE_BACKUP needs the REPLICATION attribute). */
  readonly replication?: 'database';
}

/**
 * `pg` client settings from the POSTGRES_* configuration. libpq's sslmodes map as follows:
 * disable → no TLS; allow/prefer → TLS without verification, falling back to plain only when the
 * server has no TLS (see connectWithFallback); require → TLS, no certificate check;
 * verify-ca → CA check; verify-full (the default) → CA and host name check (pg passes the host to
 * tls.connect, which matches it against the certificate's DNS or IP names; pg sets SNI itself
 * and only for names, so no servername here). A Unix socket needs no TLS.
 */
export function pgClientConfig(config: PostgresConfig, overrides: ConnectOverrides = {}): ClientConfig {
  // pg reads `replication` (a startup parameter) although @types/pg does not declare it.
  const base: ClientConfig & { replication?: string } = {
    host: config.host,
    port: config.port,
    database: overrides.database ?? config.database,
    application_name: overrides.applicationName ?? 'pms',
    connectionTimeoutMillis: 10_000,
    ...(overrides.replication ? { replication: overrides.replication } : {}),
  };
  if (config.user !== undefined) base.user = config.user;
  if (config.password !== undefined) base.password = config.password.reveal();
  // ssl is always set: left undefined, pg would take it from PGSSLMODE in our own environment
  // (the runbook exports one for psql), and ask a Unix socket for TLS.
  if (isUnixSocketHost(config.host)) return { ...base, ssl: false };
  noteTransport(config);
  switch (config.sslmode) {
    case 'disable':
      return { ...base, ssl: false };
    case 'allow':
    case 'prefer':
    case 'require':
      return { ...base, ssl: { rejectUnauthorized: false } };
    case 'verify-ca':
      return { ...base, ssl: { ca: readCa(config), checkServerIdentity: () => undefined } };
    case 'verify-full':
      return { ...base, ssl: { ca: readCa(config) } };
  }
}

function readCa(config: PostgresConfig): string {
  const path = config.sslrootcert;
  if (path === undefined) throw new PmsError('PMS_ERR_CONFIG', missingRootCert(config.sslmode));
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new PmsError(
      'PMS_ERR_CONFIG',
      `POSTGRES_SSLROOTCERT: cannot read CA certificate ${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
      { cause: error },
    );
  }
}

/** Whether a plain connection may be tried after the server said it has no TLS (libpq prefer/allow). */
export function allowsPlainFallback(config: PostgresConfig): boolean {
  return config.sslmode === 'prefer' || config.sslmode === 'allow';
}

/**
 * Environment for libpq programs (pg_dump, pg_restore, psql): the allowlist every child gets
 * plus the connection facts. Never the password: that goes through a PGPASSFILE of its own
 * (libpq-tool.ts). Nothing else of ours (repository credentials, key paths, PG* variables of the
 * caller) reaches them.
 *
 * Several POSTGRES_HOST servers reach libpq as its own lists (PGHOST=h1,h2, PGPORT=p1,p2) with
 * PGTARGETSESSIONATTRS (default read-write), so libpq itself finds the primary.
 */
export function libpqEnv(config: PostgresConfig, database?: string, target: SessionTarget = 'read-write'): NodeJS.ProcessEnv {
  const endpoints = endpointsOf(config);
  if (endpoints.some((e) => !isUnixSocketHost(e.host))) noteTransport(config);
  return childEnv({
    PGHOST: endpoints.map((e) => e.host).join(','),
    PGPORT: endpoints.map((e) => String(e.port)).join(','),
    PGTARGETSESSIONATTRS: endpoints.length > 1 ? target : undefined,
    PGDATABASE: database ?? config.database,
    PGSSLMODE: config.sslmode,
    PGCONNECT_TIMEOUT: '10',
    PGAPPNAME: 'pms-backup',
    PGUSER: config.user,
    PGSSLROOTCERT: config.sslrootcert,
  });
}
