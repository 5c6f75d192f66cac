import pg from 'pg';
import { type PostgresConfig, type PostgresEndpoint, endpointsOf, pinnedTo } from '../config/postgres-config.js';
import { PmsError } from '../errors/catalogue.js';
import { allowsPlainFallback, type ConnectOverrides, pgClientConfig } from './connection-options.js';
import { type FoundServer, type SessionTarget, findServer, serverRole } from './session-target.js';
import { SQLSTATE } from './sqlstate.js';

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ECONNRESET',
  'EHOSTUNREACH',
  SQLSTATE.cannotConnectNow,
  SQLSTATE.tooManyConnections,
]);

/** Node's codes for a server certificate that failed verification (chain or host name). */
const TLS_VERIFY_CODES =
  /^(ERR_TLS_CERT_ALTNAME_INVALID|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_(HAS_EXPIRED|NOT_YET_VALID|UNTRUSTED|REJECTED|SIGNATURE_FAILURE))$/;

/** Maps a connection failure to PMS_ERR_DB_UNAVAILABLE naming the server (never the password). */
export function connectionError(config: PostgresConfig, error: unknown, database = config.database): PmsError {
  const code = (error as { code?: string }).code;
  const message = (error as Error).message ?? String(error);
  if (code === SQLSTATE.invalidPassword || code === SQLSTATE.invalidAuthorizationSpecification) {
    return new PmsError(
      'PMS_ERR_DB_UNAVAILABLE',
      `PostgreSQL at ${config.host}:${config.port} rejected user ${config.user ?? '(default)'}: check POSTGRES_USER/POSTGRES_PASSWORD and pg_hba.conf (${code})`,
      { cause: error },
    );
  }
  if (code === SQLSTATE.invalidCatalogName) {
    return new PmsError(
      'PMS_ERR_DB_UNAVAILABLE',
      `database ${database} does not exist on ${config.host}:${config.port}: check POSTGRES_DB`,
      { cause: error },
    );
  }
  if (/does not support SSL/i.test(message)) {
    return new PmsError(
      'PMS_ERR_DB_UNAVAILABLE',
      `PostgreSQL at ${config.host}:${config.port} offers no TLS and POSTGRES_SSLMODE=${config.sslmode} requires it, so nothing (no password) was sent: turn on ssl on the server, or check POSTGRES_HOST/POSTGRES_PORT name the right one`,
      { cause: error },
    );
  }
  if (code !== undefined && TLS_VERIFY_CODES.test(code)) {
    return new PmsError(
      'PMS_ERR_DB_UNAVAILABLE',
      `the TLS certificate of PostgreSQL at ${config.host}:${config.port} did not verify (${code}), so nothing (no password) was sent: POSTGRES_SSLROOTCERT must be the CA that signed it and, for verify-full, it must name ${config.host}`,
      { cause: error },
    );
  }
  const hint =
    code && UNAVAILABLE_CODES.has(code)
      ? 'is the server running and reachable? check POSTGRES_HOST/POSTGRES_PORT'
      : 'check the POSTGRES_* settings';
  return new PmsError(
    'PMS_ERR_DB_UNAVAILABLE',
    `cannot connect to PostgreSQL at ${config.host}:${config.port} (${code ?? message}): ${hint}`,
    { cause: error, details: { sqlstate: code } },
  );
}

/**
 * Opens a client, honouring sslmode prefer/allow's fallback to plain connections. With several
 * POSTGRES_HOST servers it connects to the one `options.target` asks for (default read-write: the
 * primary, as libpq's target_session_attrs=read-write), trying them in order; one server is used
 * as named, whatever its role (commands that care say why in their own words).
 */
export async function connect(config: PostgresConfig, options: ConnectOverrides & { target?: SessionTarget } = {}): Promise<pg.Client> {
  if (endpointsOf(config).length === 1) return connectOne(config, options);
  return (await connectToTarget(config, options.target ?? 'read-write', options)).client;
}

/**
 * Like connect, and says which server it reached and what it is: for commands that choose by
 * role (base-backup and create with BACKUP_FROM_STANDBY), and that must then talk to that one
 * server again (pinnedTo(config, endpoint)).
 */
export async function connectToTarget(config: PostgresConfig, target: SessionTarget, options: ConnectOverrides = {}): Promise<FoundServer> {
  const endpoints = endpointsOf(config);
  if (endpoints.length === 1) {
    const endpoint = endpoints[0] as PostgresEndpoint;
    const client = await connectOne(config, options);
    try {
      return { client, endpoint, role: (await serverRole(client)).role };
    } catch (error) {
      await client.end().catch(() => undefined);
      throw connectionError(config, error, options.database);
    }
  }
  return findServer(config, target, (endpoint) => connectOne(pinnedTo(config, endpoint), options));
}

async function connectOne(config: PostgresConfig, options: ConnectOverrides): Promise<pg.Client> {
  const attempt = async (clientConfig: pg.ClientConfig): Promise<pg.Client> => {
    const client = new pg.Client(clientConfig);
    client.on('error', () => undefined);
    await client.connect();
    return client;
  };
  const clientConfig = pgClientConfig(config, options);
  try {
    return await attempt(clientConfig);
  } catch (error) {
    if (clientConfig.ssl && allowsPlainFallback(config) && /does not support SSL/i.test((error as Error).message)) {
      try {
        return await attempt({ ...clientConfig, ssl: false });
      } catch (second) {
        throw connectionError(config, second, options.database);
      }
    }
    throw connectionError(config, error, options.database);
  }
}

/** Scoped client: always closed (kysely's using… helpers). */
export async function usingClient<T>(
  config: PostgresConfig,
  use: (client: pg.Client) => Promise<T>,
  options: { database?: string; applicationName?: string; target?: SessionTarget } = {},
): Promise<T> {
  const client = await connect(config, options);
  try {
    return await use(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
