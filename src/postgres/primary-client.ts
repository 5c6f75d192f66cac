import pg from 'pg';
import { type PostgresConfig, type PostgresEndpoint, pinnedTo } from '../config/postgres-config.js';
import { PmsError } from '../errors/catalogue.js';
import { connectionError } from './connect.js';
import { findServer, serverRole } from './session-target.js';
import { SQLSTATE } from './sqlstate.js';

/**
 * Remembers which server of a POSTGRES_HOST list is the primary, for a pool that lives through
 * failovers (pms-telemetry serve). The search runs once for all callers that need it at the
 * same moment, and again whenever a connection to the remembered server fails or finds it
 * read-only: after a failover the next acquire finds the new primary, without a restart.
 */
export class PrimaryLocator {
  readonly #config: PostgresConfig;
  readonly #clientConfig: (endpoint: PostgresEndpoint) => pg.ClientConfig;
  #current: PostgresEndpoint | undefined;
  #search: Promise<PostgresEndpoint> | undefined;

  constructor(config: PostgresConfig, clientConfig: (endpoint: PostgresEndpoint) => pg.ClientConfig) {
    this.#config = config;
    this.#clientConfig = clientConfig;
  }

  /** The remembered primary, or the result of a search (PMS_ERR_DB_UNAVAILABLE when there is none). */
  async primary(): Promise<PostgresEndpoint> {
    if (this.#current) return this.#current;
    this.#search ??= findServer(this.#config, 'read-write', async (endpoint) => {
      const client = new pg.Client(this.#clientConfig(endpoint));
      client.on('error', () => undefined);
      try {
        await client.connect();
      } catch (error) {
        throw connectionError(pinnedTo(this.#config, endpoint), error);
      }
      return client;
    })
      .then(async (found) => {
        await found.client.end().catch(() => undefined);
        this.#current = found.endpoint;
        return found.endpoint;
      })
      .finally(() => {
        this.#search = undefined;
      });
    return this.#search;
  }

  /** `endpoint` failed or is no longer the primary: the next acquire searches again. */
  forget(endpoint: PostgresEndpoint): void {
    if (this.#current && this.#current.host === endpoint.host && this.#current.port === endpoint.port) this.#current = undefined;
  }
}

type Callback = (error: Error | undefined, result?: unknown) => void;

/**
 * A pg.Client class for pg.Pool's `Client` option: each new connection goes to the primary the
 * locator names and checks, on that very connection, that it still takes writes (the primary
 * can change between search and connect). A connection that fails, is lost, or meets
 * read_only_sql_transaction (its server was demoted) makes the locator forget the server, and a
 * read-only one is ended so the pool drops it instead of lending it again.
 */
export function primaryClientClass(locator: PrimaryLocator): typeof pg.Client {
  return class PrimaryClient extends pg.Client {
    #endpoint: PostgresEndpoint | undefined;

    constructor(config?: string | pg.ClientConfig) {
      super(config);
      this.on('error', () => {
        if (this.#endpoint) locator.forget(this.#endpoint);
      });
    }

    // pg-pool calls connect(callback); other callers may await it.
    override connect(): Promise<pg.Client>;
    override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
    override connect(callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): Promise<pg.Client> | undefined {
      const connected = this.#connectToPrimary().then(() => this as pg.Client);
      if (!callback) return connected;
      connected.then(
        (client) => (callback as (err: null, c: pg.Client) => void)(null, client),
        (error: Error) => (callback as (err: Error) => void)(error),
      );
      return undefined;
    }

    async #connectToPrimary(): Promise<void> {
      const endpoint = await locator.primary();
      this.#endpoint = endpoint;
      // pg connects to (and verifies TLS against) this.host / this.port, read when connecting.
      const self = this as unknown as { host: string; port: number };
      self.host = endpoint.host;
      self.port = endpoint.port;
      try {
        await super.connect();
      } catch (error) {
        locator.forget(endpoint);
        throw error;
      }
      let writable: boolean;
      try {
        ({ writable } = await serverRole(this));
      } catch (error) {
        locator.forget(endpoint);
        await this.end().catch(() => undefined);
        throw error;
      }
      if (!writable) {
        locator.forget(endpoint);
        await this.end().catch(() => undefined);
        throw new PmsError(
          'PMS_ERR_DB_UNAVAILABLE',
          `${endpoint.host}:${endpoint.port} no longer takes writes (a failover is under way): retry`,
        );
      }
    }

    // Watches every statement's outcome for a demoted server; the caller still gets the error.
    override query(...args: unknown[]): never {
      const last = args[args.length - 1];
      if (typeof last === 'function') {
        args[args.length - 1] = (error: Error | undefined, result: unknown) => {
          if (error) this.#noteFailure(error);
          (last as Callback)(error, result);
        };
        return (super.query as (...a: unknown[]) => never)(...args);
      }
      const result = (super.query as (...a: unknown[]) => unknown)(...args);
      if (result instanceof Promise) result.catch((error: Error) => this.#noteFailure(error));
      return result as never;
    }

    #noteFailure(error: Error): void {
      if ((error as { code?: unknown }).code !== SQLSTATE.readOnlySqlTransaction) return;
      if (this.#endpoint) locator.forget(this.#endpoint);
      // An ended client is not lent again: pg-pool drops it on release.
      this.end().catch(() => undefined);
    }
  };
}
