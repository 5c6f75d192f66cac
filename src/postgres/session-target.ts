import type pg from 'pg';
import { type PostgresConfig, type PostgresEndpoint, endpointsOf } from '../config/postgres-config.js';
import { PmsError } from '../errors/catalogue.js';

/**
 * Which server of a POSTGRES_HOST list a connection wants, with libpq's target_session_attrs
 * meanings: read-write = the primary (not in recovery, writes allowed); standby = a server in
 * recovery; prefer-standby = a standby if one answers, else any; any = the first that answers.
 */
export type SessionTarget = 'read-write' | 'standby' | 'prefer-standby' | 'any';

export type ServerRole = 'primary' | 'standby';

/**
 * The role of the server behind `client`. libpq's read-write check asks transaction_read_only
 * too: a primary with default_transaction_read_only on does not take writes either.
 */
export async function serverRole(client: pg.Client): Promise<{ role: ServerRole; writable: boolean }> {
  const { rows } = await client.query<{ recovery: boolean; read_only: string }>(
    "SELECT pg_is_in_recovery() AS recovery, current_setting('transaction_read_only') AS read_only",
  );
  const recovery = rows[0]?.recovery === true;
  return { role: recovery ? 'standby' : 'primary', writable: !recovery && rows[0]?.read_only === 'off' };
}

export interface FoundServer {
  readonly client: pg.Client;
  readonly endpoint: PostgresEndpoint;
  readonly role: ServerRole;
}

/**
 * Connects to the servers of `config` one after the other, as libpq does for a host list, and
 * keeps the first that matches `target` (for prefer-standby: the first standby, else the first
 * server that answered). Every other connection is closed. Throws PMS_ERR_DB_UNAVAILABLE naming
 * what each server was, so an operator sees "standby, standby, refused" mid-failover.
 */
export async function findServer(
  config: PostgresConfig,
  target: SessionTarget,
  open: (endpoint: PostgresEndpoint) => Promise<pg.Client>,
): Promise<FoundServer> {
  const seen: string[] = [];
  let fallback: FoundServer | undefined;
  let lastError: unknown;
  for (const endpoint of endpointsOf(config)) {
    let client: pg.Client;
    try {
      client = await open(endpoint);
    } catch (error) {
      lastError = error;
      seen.push(`${endpoint.host}:${endpoint.port} ${reason(error)}`);
      continue;
    }
    let role: ServerRole;
    let writable: boolean;
    try {
      ({ role, writable } = await serverRole(client));
    } catch (error) {
      lastError = error;
      seen.push(`${endpoint.host}:${endpoint.port} ${reason(error)}`);
      await client.end().catch(() => undefined);
      continue;
    }
    const found = { client, endpoint, role };
    const matches = target === 'any' || (target === 'read-write' ? writable : role === 'standby');
    if (matches) {
      if (fallback) await fallback.client.end().catch(() => undefined);
      return found;
    }
    if (target === 'prefer-standby' && fallback === undefined) {
      fallback = found;
      continue;
    }
    seen.push(`${endpoint.host}:${endpoint.port} is ${role === 'primary' && !writable ? 'a read-only primary' : `a ${role}`}`);
    await client.end().catch(() => undefined);
  }
  if (fallback) return fallback;
  const want = target === 'read-write' ? 'a primary accepting writes' : target === 'standby' ? 'a standby' : 'a server';
  throw new PmsError(
    'PMS_ERR_DB_UNAVAILABLE',
    `none of the POSTGRES_HOST servers is ${want} (${seen.join('; ')})${target === 'read-write' ? ': during a failover the new primary appears within seconds, retry' : ''}`,
    { cause: lastError },
  );
}

/** What went wrong with one server, without anything the server said about data. */
function reason(error: unknown): string {
  if (error instanceof PmsError) return `(${error.message})`;
  const code = (error as { code?: unknown }).code;
  return `(${typeof code === 'string' ? code : ((error as Error).message ?? 'failed')})`;
}
