import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { PostgresConfig } from '../../config/postgres-config.js';
import { secretVariables } from '../../config/secret-variables.js';
import { PmsError, isPmsError } from '../../errors/catalogue.js';
import { SQLSTATE } from '../../postgres/sqlstate.js';
import type { Check } from '../../repository/verification-record.js';
import { usingSandboxClient } from './sandbox-client.js';

const WAIT_MS = 120_000;
const SUPERUSER = 'postgres';

export interface AttachedServer {
  /** Where to restore: the server in the socket directory, as its superuser. */
  readonly postgres: (database: string) => PostgresConfig;
  readonly sandbox: Check;
}

/**
 * verify's side of the verify pod's sidecar (commands/verify-server/). The server is another
 * container's process, so nothing about it is taken on trust: before anything is restored into
 * it, verify asks it, as its superuser, about itself. It must run as another uid than ours
 * (the socket's owner), be the dumps' major version, be unable to read any secret file of ours
 * (pg_read_binary_file as that server), and hold no secret variable in its environment
 * (/proc/self/environ of a backend, which the postmaster passes on). Once restored code has run
 * the server could lie, which is why these checks come first; the restored database is dropped
 * afterwards so that patient data does not stay in the sidecar.
 */
export async function usingAttachedServer<T>(
  options: { socketDir: string; major: number; protectedFiles: readonly string[]; database: string; signal?: AbortSignal },
  use: (server: AttachedServer) => Promise<T>,
): Promise<T> {
  const { socketDir } = options;
  const port = await waitForSocket(socketDir, options.signal);
  const config = (database: string): PostgresConfig => ({
    host: socketDir,
    port,
    database,
    user: SUPERUSER,
    password: undefined,
    sslmode: 'disable',
    sslrootcert: undefined,
  });
  const owner = lstatSync(join(socketDir, `.s.PGSQL.${port}`)).uid;
  if (owner === process.getuid?.())
    throw new PmsError(
      'PMS_ERR_CONFIG',
      `the server at ${socketDir} runs as our own uid ${owner}: restored code could read the key; run verify-server as another uid (docs/architecture.md, "Verify's sandbox")`,
    );
  const facts = await connectWhenReady(config('postgres'), options.signal, async (client) => {
    const version = Number((await client.query<{ v: string }>("SELECT pg_catalog.current_setting('server_version_num') AS v")).rows[0]?.v);
    if (Math.floor(version / 10000) !== options.major)
      throw new PmsError(
        'PMS_ERR_CONFIG',
        `the server at ${socketDir} is PostgreSQL ${Math.floor(version / 10000)}, the backup was made by ${options.major}: run verify-server --major ${options.major}`,
      );
    const readable: string[] = [];
    for (const file of new Set(options.protectedFiles.filter(Boolean))) if (await serverCanRead(client, file)) readable.push(file);
    if (readable.length > 0)
      throw new PmsError(
        'PMS_ERR_CONFIG',
        `refusing to restore into the server at ${socketDir}: it can read ${readable.join(', ')}, and code restored from a backup runs there; mount no secret into verify-server's container`,
        { details: { readable } },
      );
    const environ = (await client.query<{ e: Buffer }>("SELECT pg_catalog.pg_read_binary_file('/proc/self/environ') AS e")).rows[0]?.e;
    const env = Object.fromEntries(
      (environ ?? Buffer.alloc(0))
        .toString('utf8')
        .split('\0')
        .filter((entry) => entry.includes('='))
        .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
    );
    const secrets = secretVariables(env);
    if (secrets.length > 0)
      throw new PmsError(
        'PMS_ERR_CONFIG',
        `refusing to restore into the server at ${socketDir}: its environment holds ${secrets.join(', ')}; give verify-server's container no secret`,
      );
    await client.query(`DROP DATABASE IF EXISTS ${options.database} WITH (FORCE)`);
    return { version, files: new Set(options.protectedFiles.filter(Boolean)).size };
  });
  const sandbox: Check = {
    name: 'sandbox',
    ok: true,
    detail: [
      `PostgreSQL ${Math.floor(facts.version / 10000)} ran in verify-server as uid ${owner}, apart from pms-backup (uid ${process.getuid?.()})`,
      `attached over the Unix socket ${socketDir}, peer authentication`,
      `asked before the restore: none of the ${facts.files} secret file(s) readable by it, no secret in its environment`,
    ].join(', '),
  };
  try {
    return await use({ postgres: config, sandbox });
  } finally {
    await usingSandboxClient(config('postgres'), (client) =>
      client.query(`DROP DATABASE IF EXISTS ${options.database} WITH (FORCE)`),
    ).catch(() => undefined);
  }
}

/** True when the server can open `file` (NULL: it does not exist there; 42501: permission denied). */
async function serverCanRead(client: pg.Client, file: string): Promise<boolean> {
  try {
    const { rows } = await client.query<{ r: Buffer | null }>('SELECT pg_catalog.pg_read_binary_file($1, 0, 0, true) AS r', [file]);
    return rows[0]?.r !== null && rows[0]?.r !== undefined;
  } catch (error) {
    if ((error as { code?: string }).code === SQLSTATE.insufficientPrivilege) return false;
    throw new PmsError(
      'PMS_ERR_CONFIG',
      `cannot ask the server at ${client.host} whether it can read ${file}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

async function waitForSocket(dir: string, signal: AbortSignal | undefined): Promise<number> {
  const deadline = Date.now() + WAIT_MS;
  let told = false;
  for (;;) {
    signal?.throwIfAborted();
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (error) {
      throw new PmsError(
        'PMS_ERR_CONFIG',
        `BACKUP_VERIFY_SERVER_SOCKET_DIR: cannot read ${dir} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
      );
    }
    const ports = names
      .map((n) => /^\.s\.PGSQL\.(\d+)$/.exec(n)?.[1])
      .filter((p): p is string => p !== undefined)
      .filter((p) => lstatSync(join(dir, `.s.PGSQL.${p}`)).isSocket());
    if (ports.length > 1)
      throw new PmsError(
        'PMS_ERR_CONFIG',
        `BACKUP_VERIFY_SERVER_SOCKET_DIR: ${dir} holds ${ports.length} PostgreSQL sockets; expected one`,
      );
    if (ports.length === 1) return Number(ports[0]);
    if (Date.now() > deadline)
      throw new PmsError(
        'PMS_ERR_DB_UNAVAILABLE',
        `no verify-server socket appeared in ${dir} within ${WAIT_MS / 1000} s: is the verify-server container running?`,
      );
    if (!told) process.stderr.write(`waiting for verify-server's socket in ${dir}\n`);
    told = true;
    await sleep(250, undefined, { signal });
  }
}

async function connectWhenReady<T>(
  config: PostgresConfig,
  signal: AbortSignal | undefined,
  use: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      return await usingSandboxClient(config, use);
    } catch (error) {
      const sqlstate = isPmsError(error) ? (error.details as { sqlstate?: string } | undefined)?.sqlstate : undefined;
      const starting = sqlstate === SQLSTATE.cannotConnectNow || sqlstate === 'ECONNREFUSED' || sqlstate === 'ENOENT';
      if (!starting || Date.now() > deadline) throw error;
      await sleep(250, undefined, { signal });
    }
  }
}
