import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, appendFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { PmsError } from '../errors/catalogue.js';
import { runTool } from '../process/tool-process.js';
import { findPgProgram } from './binaries.js';

export interface ThrowawayClusterOptions {
  /** Major version whose binaries are used (PG_BIN_DIR overrides). */
  readonly major?: number;
  /** Extra postgresql.conf lines, appended after initdb (e.g. archive_command). */
  readonly settings?: Readonly<Record<string, string | number | boolean>>;
  /** Listen on 127.0.0.1 as well as the Unix socket (default true). */
  readonly tcp?: boolean;
  /** OS user that owns and runs the server when we are root (PostgreSQL refuses root). */
  readonly osUser?: string;
  /** Environment for the server process (archive_command inherits it). */
  readonly serverEnv?: NodeJS.ProcessEnv;
  /** Parent directory for the cluster's temporary directory. */
  readonly parentDir?: string;
  /** Keep initdb's fsyncs (slower); off by default because the cluster is disposable. */
  readonly durable?: boolean;
  /**
   * Fill the data directory instead of running initdb (e.g. unpack a base backup to recover it).
   * Called with the empty directory (mode 0700, owned by the server's OS user) and that user.
   */
  readonly populate?: (dataDir: string, osUser: string | undefined) => Promise<void>;
}

export interface ThrowawayCluster {
  readonly dataDir: string;
  readonly socketDir: string;
  readonly host: string;
  readonly port: number;
  readonly superuser: string;
  readonly binDir: string;
  readonly osUser: string | undefined;
  /** libpq environment for programs (psql, pg_dump) connecting as the superuser. */
  readonly libpqEnv: NodeJS.ProcessEnv;
  /** POSTGRES_* variables as pms-backup / pms-telemetry read them. */
  readonly postgresEnv: Readonly<Record<string, string>>;
  psql(sql: string, database?: string): Promise<string>;
  start(): Promise<void>;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Stops the server (if running) and deletes every file it created. */
  destroy(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function formatSetting(value: string | number | boolean): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * Starts a disposable PostgreSQL cluster in a temporary directory: for tests, for `verify`
 * (which must never touch production) and for the demo. When running as root the server runs
 * as `osUser` (default `postgres`), because PostgreSQL refuses to run as root.
 */
export async function startThrowawayCluster(options: ThrowawayClusterOptions = {}): Promise<ThrowawayCluster> {
  const major = options.major ?? 15;
  const env = process.env;
  const initdb = findPgProgram('initdb', env, major);
  const pgCtl = findPgProgram('pg_ctl', env, major);
  const binDir = initdb.slice(0, initdb.lastIndexOf('/'));
  const isRoot = process.getuid?.() === 0;
  const osUser = isRoot ? (options.osUser ?? env['PMS_PG_OS_USER'] ?? 'postgres') : undefined;
  const root = mkdtempSync(join(options.parentDir ?? tmpdir(), 'pms-pg-'));
  const dataDir = join(root, 'data');
  const socketDir = root;
  const logFile = join(root, 'server.log');
  const superuser = 'postgres';
  let running = false;

  if (osUser) {
    const { uid, gid } = await lookupUser(osUser);
    chownSync(root, uid, gid);
    writeFileSync(logFile, '');
    chownSync(logFile, uid, gid);
  }
  const port = await freePort();
  const host = options.tcp === false ? socketDir : '127.0.0.1';
  const libpqEnv: NodeJS.ProcessEnv = { ...env, PGHOST: socketDir, PGPORT: String(port), PGUSER: superuser, PGDATABASE: 'postgres' };
  delete libpqEnv['PGPASSWORD'];
  delete libpqEnv['PGPASSFILE'];

  const cluster: ThrowawayCluster = {
    dataDir,
    socketDir,
    host,
    port,
    superuser,
    binDir,
    osUser,
    libpqEnv,
    postgresEnv: { POSTGRES_HOST: host, POSTGRES_PORT: String(port), POSTGRES_USER: superuser, POSTGRES_SSLMODE: 'disable' },
    async psql(sql, database = 'postgres') {
      const psql = findPgProgram('psql', env, major);
      const result = await runTool(psql, ['-X', '-v', 'ON_ERROR_STOP=1', '-qAt', '-d', database], { env: libpqEnv, input: sql });
      return result.stdout.trim();
    },
    async start() {
      const listen = options.tcp === false ? "''" : '127.0.0.1';
      await runTool(
        pgCtl,
        ['-D', dataDir, '-l', logFile, '-w', '-t', '60', '-o', `-p ${port} -k ${socketDir} -c listen_addresses=${listen}`, 'start'],
        {
          runAs: osUser,
          env: { ...env, ...options.serverEnv },
        },
      ).catch((error: unknown) => {
        throw new PmsError('PMS_ERR_DB_UNAVAILABLE', `throwaway PostgreSQL did not start: ${tailOf(logFile)}`, { cause: error });
      });
      running = true;
    },
    async stop(mode = 'fast') {
      if (!running) return;
      await runTool(pgCtl, ['-D', dataDir, '-w', '-t', '60', '-m', mode, 'stop'], { runAs: osUser });
      running = false;
    },
    async destroy() {
      try {
        if (running) await cluster.stop('immediate');
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  };

  try {
    if (options.populate) {
      mkdirSync(dataDir, { mode: 0o700 });
      if (osUser) {
        const { uid, gid } = await lookupUser(osUser);
        chownSync(dataDir, uid, gid);
      }
      await options.populate(dataDir, osUser);
    } else {
      const initArgs = ['-D', dataDir, '-U', superuser, '--auth=trust', '--encoding=UTF8', '--locale=C.UTF-8'];
      if (!options.durable) initArgs.push('--no-sync');
      await runTool(initdb, initArgs, { runAs: osUser, cwd: root });
    }
    const settings: Record<string, string | number | boolean> = { fsync: options.durable ? true : false, ...options.settings };
    appendFileSync(
      join(dataDir, 'postgresql.conf'),
      `\n# pms throwaway cluster\n${Object.entries(settings)
        .map(([k, v]) => `${k} = ${formatSetting(v)}`)
        .join('\n')}\n`,
    );
    await cluster.start();
    return cluster;
  } catch (error) {
    await cluster.destroy().catch(() => undefined);
    throw error;
  }
}

function tailOf(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ');
  } catch {
    return 'no server log';
  }
}

async function lookupUser(name: string): Promise<{ uid: number; gid: number }> {
  if (userInfo().username === name) return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const { stdout } = await runTool('id', ['-u', name]).catch((error: unknown) => {
    throw new PmsError('PMS_ERR_CONFIG', `OS user ${name} does not exist: create it or set PMS_PG_OS_USER to a non-root user`, {
      cause: error,
    });
  });
  const gid = (await runTool('id', ['-g', name])).stdout;
  return { uid: Number(stdout.trim()), gid: Number(gid.trim()) };
}

/** Scoped helper: the cluster is destroyed whatever `use` does (kysely's using… pattern). */
export async function usingThrowawayCluster<T>(
  options: ThrowawayClusterOptions,
  use: (cluster: ThrowawayCluster) => Promise<T>,
): Promise<T> {
  const cluster = await startThrowawayCluster(options);
  try {
    return await use(cluster);
  } finally {
    await cluster.destroy();
  }
}
