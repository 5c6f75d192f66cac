import { chownSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PmsError } from '../errors/catalogue.js';
import { childEnv } from '../process/child-env.js';
import { type ToolProcess, runTool, startTool } from '../process/tool-process.js';
import { findPgProgram } from './binaries.js';
import { freePort } from './free-port.js';
import { makeThrowawayTls } from './throwaway-tls.js';
import { usingDataDirectory } from './data-directory-writer.js';
import {
  type NetworkIsolation,
  type SandboxIdentity,
  killSandbox,
  readableBy,
  refuseReadableSecrets,
  sandboxHba,
  sandboxIdent,
  sandboxIdentity,
  sandboxLaunch,
} from './sandbox.js';

export interface ThrowawayClusterOptions {
  /** Major version whose binaries are used (PG_BIN_DIR overrides). */
  readonly major?: number;
  /** Extra postgresql.conf lines, appended after initdb (e.g. archive_command). */
  readonly settings?: Readonly<Record<string, string | number | boolean>>;
  /** Listen on 127.0.0.1 as well as the Unix socket (default true; never for a sandbox). */
  readonly tcp?: boolean;
  /**
   * On TCP, speak only TLS with a certificate for 127.0.0.1/localhost from a CA made for this
   * cluster (throwaway-tls.ts), and hand out verify-full settings (default: whenever it listens on
   * TCP). False for a cluster whose own configuration brings its TLS (deploy-proofs): it is then
   * handed out by its Unix socket.
   */
  readonly tls?: boolean;
  /** OS user that owns and runs the server when we are root (PostgreSQL refuses root). */
  readonly osUser?: string;
  /**
   * Variables for the server process (archive_command inherits them), on top of the allowlist
   * every child gets (process/child-env.ts). Not for a sandbox, whose server gets nothing of ours.
   */
  readonly serverEnv?: NodeJS.ProcessEnv;
  /**
   * The server will run code from a backup (verify, PITR's recovery check): see
   * docs/architecture.md, "Verify's sandbox". It runs as the OS user pms-sandbox (when we are
   * root) in its own network, PID and mount namespaces, listens on a Unix socket in a 0700
   * directory only, admits only the superuser by peer authentication from pms-backup's and its
   * own OS user, gets no environment of ours, and does not start if it could read one of
   * `protectedFiles` (the private key, its passphrase, credentials).
   */
  readonly sandbox?: SandboxOptions;
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

export interface SandboxOptions {
  readonly protectedFiles: readonly string[];
  /**
   * An existing directory for the socket instead of the cluster's own 0700 one: the verify pod's
   * emptyDir shared with pms-backup's container (`pms-backup verify-server`). The socket is then
   * 0777 and admission is peer authentication alone (pg_ident.conf names who may log in).
   */
  readonly socketDir?: string;
  /** OS user names besides ours and the server's that pg_ident.conf admits (verify in the other container). */
  readonly clientOsUsers?: readonly string[];
}

export interface ThrowawayCluster {
  readonly dataDir: string;
  readonly socketDir: string;
  readonly host: string;
  readonly port: number;
  readonly superuser: string;
  readonly binDir: string;
  readonly osUser: string | undefined;
  /** The CA certificate the server's TLS certificate chains to (undefined without TLS). */
  readonly caFile: string | undefined;
  /** How a sandboxed server is kept apart (undefined for an ordinary throwaway cluster). */
  readonly isolation: SandboxIsolation | undefined;
  /** libpq environment for programs (psql, pg_dump) connecting as the superuser. */
  readonly libpqEnv: NodeJS.ProcessEnv;
  /**
   * POSTGRES_* variables as pms-backup / pms-telemetry read them: TCP with verify-full against
   * caFile, or the Unix socket (which needs no TLS) for a cluster without TLS.
   */
  readonly postgresEnv: Readonly<Record<string, string>>;
  psql(sql: string, database?: string): Promise<string>;
  start(): Promise<void>;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Stops the server (if running) and deletes every file it created. */
  destroy(): Promise<void>;
}

export interface SandboxIsolation {
  readonly osUser: string;
  readonly uid: number;
  readonly network: NetworkIsolation;
  readonly protectedFiles: number;
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
  const sandbox = options.sandbox;
  if (sandbox && (options.tcp === true || options.serverEnv !== undefined || options.osUser !== undefined))
    throw new PmsError('PMS_ERR_INTERNAL', 'a sandboxed throwaway cluster takes no tcp, serverEnv or osUser option');
  const env = process.env;
  const initdb = findPgProgram('initdb', env, major);
  const pgCtl = findPgProgram('pg_ctl', env, major);
  const postgres = findPgProgram('postgres', env, major);
  const binDir = initdb.slice(0, initdb.lastIndexOf('/'));
  const isRoot = process.getuid?.() === 0;
  let identity: SandboxIdentity | undefined;
  if (sandbox) {
    identity = await sandboxIdentity();
    if (identity.osUser !== undefined) {
      await refuseReadableSecrets(identity, sandbox.protectedFiles);
    } else {
      // Without root (the verify pod as deployed today) the server can only run as ourselves,
      // and we must read the key to decrypt: verification still runs, since it is the proof
      // that backups restore, but loudly. The pod's separate-uid design is still to be built
      // (docs/architecture.md, "Verify's sandbox").
      const readable = await readableBy(identity, sandbox.protectedFiles);
      if (readable.length > 0) {
        process.stderr.write(
          `warning: the throwaway PostgreSQL runs as pms-backup's own OS user ${identity.name} (not root), which can read ${readable.join(', ')}: code restored from a backup could read them too; run verify as root, or where the server runs apart from the key\n`,
        );
      }
    }
  }
  const osUser = sandbox ? identity?.osUser : isRoot ? (options.osUser ?? env['PMS_PG_OS_USER'] ?? 'postgres') : undefined;
  const tcp = sandbox ? false : options.tcp !== false;
  const tls = tcp && options.tls !== false;
  const root = mkdtempSync(join(options.parentDir ?? tmpdir(), 'pms-pg-'));
  const dataDir = join(root, 'data');
  // The socket lives in the cluster's own 0700 directory: only its owner (and root) can reach it.
  const socketDir = sandbox?.socketDir ?? root;
  const logFile = join(root, 'server.log');
  const superuser = 'postgres';
  let running = false;
  let sandboxServer: ToolProcess | undefined;

  // The log file is created (exclusively) while the directory is still root's, then both are
  // handed over: nothing can be planted in between.
  closeSync(openSync(logFile, 'wx', 0o600));
  // Made while the directory is still ours, so its CA key (deleted after signing) was never the
  // server's to read; the server gets its own key and certificate.
  const certificates = tls
    ? await makeThrowawayTls(join(root, 'tls')).catch((error: unknown) => {
        rmSync(root, { recursive: true, force: true });
        throw error;
      })
    : undefined;
  if (osUser) {
    const { uid, gid } = identity ?? (await lookupUser(osUser));
    chownSync(logFile, uid, gid);
    if (certificates) {
      for (const file of [join(root, 'tls'), certificates.keyFile, certificates.certFile]) chownSync(file, uid, gid);
    }
    chownSync(root, uid, gid);
  }
  const port = await freePort();
  const host = tls ? '127.0.0.1' : socketDir;
  const libpqEnv = childEnv({ PGHOST: socketDir, PGPORT: String(port), PGUSER: superuser, PGDATABASE: 'postgres' });
  const isolation: SandboxIsolation | undefined =
    sandbox && identity
      ? {
          osUser: identity.name,
          uid: identity.uid,
          network: sandboxLaunch(identity, postgres, []).network,
          protectedFiles: new Set(sandbox.protectedFiles.filter(Boolean)).size,
        }
      : undefined;

  /** postgres's own command line wins over every configuration file, including a backup's. */
  const serverArgs = (): string[] => [
    '-D',
    dataDir,
    '-p',
    String(port),
    '-k',
    socketDir,
    '-c',
    'listen_addresses=',
    '-c',
    `unix_socket_permissions=${sandbox?.socketDir ? '0777' : '0700'}`,
    '-c',
    `data_directory=${dataDir}`,
    '-c',
    `hba_file=${join(dataDir, 'pg_hba.conf')}`,
    '-c',
    `ident_file=${join(dataDir, 'pg_ident.conf')}`,
    '-c',
    'external_pid_file=',
    '-c',
    'archive_mode=off',
    // A backup's postgresql.conf may turn on TLS with its source's certificate paths (Patroni
    // writes ssl settings there): a socket-only server needs none, and must not fail on them.
    '-c',
    'ssl=off',
  ];

  async function startSandboxed(): Promise<void> {
    if (!identity) throw new PmsError('PMS_ERR_INTERNAL', 'sandbox identity missing');
    const launch = sandboxLaunch(identity, postgres, serverArgs());
    const server = startTool(launch.file, launch.args, { env: childEnv(), stdout: 'ignore' });
    sandboxServer = server;
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (server.child.exitCode !== null || server.child.signalCode !== null) {
        await server.done.catch(() => undefined);
        throw new PmsError('PMS_ERR_DB_UNAVAILABLE', `throwaway PostgreSQL did not start: ${lastLines(server.stderr())}`);
      }
      // Line 8 of postmaster.pid is the server's state, as pg_ctl -w reads it.
      const state = (await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[7]?.trim();
      if (state === 'ready' || state === 'standby') return;
      if (Date.now() > deadline) {
        await killSandbox(server, launch.network);
        throw new PmsError('PMS_ERR_DB_UNAVAILABLE', `throwaway PostgreSQL did not start within 60 s: ${lastLines(server.stderr())}`);
      }
      await sleep(50);
    }
  }

  const cluster: ThrowawayCluster = {
    dataDir,
    socketDir,
    host,
    port,
    superuser,
    binDir,
    osUser,
    isolation,
    caFile: certificates?.caFile,
    libpqEnv,
    postgresEnv: {
      POSTGRES_HOST: host,
      POSTGRES_PORT: String(port),
      POSTGRES_USER: superuser,
      ...(certificates ? { POSTGRES_SSLMODE: 'verify-full', POSTGRES_SSLROOTCERT: certificates.caFile } : {}),
    },
    async psql(sql, database = 'postgres') {
      const psql = findPgProgram('psql', env, major);
      const result = await runTool(psql, ['-X', '-v', 'ON_ERROR_STOP=1', '-qAt', '-d', database], { env: libpqEnv, input: sql });
      return result.stdout.trim();
    },
    async start() {
      if (sandbox) {
        await startSandboxed();
        running = true;
        return;
      }
      const listen = tcp ? '127.0.0.1' : "''";
      // On the command line, not in postgresql.conf: a base backup of this cluster must not carry
      // paths to certificates that go with it.
      // Without TLS of its own, ssl=off: a restored postgresql.conf (Patroni's) may name
      // certificates of its source. Except with tls: false, which means the cluster's own
      // configuration brings its TLS (deploy-proofs' ConfigMap, a test's own certificates).
      const ssl = certificates
        ? ` -c ssl=on -c ssl_cert_file=${certificates.certFile} -c ssl_key_file=${certificates.keyFile}`
        : options.tls === false
          ? ''
          : ' -c ssl=off';
      await runTool(
        pgCtl,
        ['-D', dataDir, '-l', logFile, '-w', '-t', '60', '-o', `-p ${port} -k ${socketDir} -c listen_addresses=${listen}${ssl}`, 'start'],
        { runAs: osUser, env: childEnv(options.serverEnv) },
      ).catch((error: unknown) => {
        throw new PmsError('PMS_ERR_DB_UNAVAILABLE', `throwaway PostgreSQL did not start: ${tailOf(logFile)}`, { cause: error });
      });
      running = true;
    },
    async stop(mode = 'fast') {
      if (!running) return;
      if (sandboxServer && isolation) {
        // A sandbox is never restarted gracefully: it and whatever ran in it are killed.
        await killSandbox(sandboxServer, isolation.network);
        sandboxServer = undefined;
      } else {
        await runTool(pgCtl, ['-D', dataDir, '-w', '-t', '60', '-m', mode, 'stop'], { runAs: osUser });
      }
      running = false;
    },
    async destroy() {
      try {
        if (running || sandboxServer) {
          running = true;
          await cluster.stop('immediate');
        }
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  };

  try {
    if (options.populate) {
      mkdirSync(dataDir, { mode: 0o700 });
      if (osUser) {
        const { uid, gid } = identity ?? (await lookupUser(osUser));
        chownSync(dataDir, uid, gid);
      }
      await options.populate(dataDir, osUser);
    } else {
      const initArgs = ['-D', dataDir, '-U', superuser, '--auth=trust', '--encoding=UTF8', '--locale=C.UTF-8'];
      if (sandbox) initArgs.splice(4, 1, '--auth-local=peer', '--auth-host=reject');
      if (!options.durable) initArgs.push('--no-sync');
      await runTool(initdb, initArgs, { runAs: osUser, cwd: root });
    }
    const settings: Record<string, string | number | boolean> = { fsync: options.durable ? true : false, ...options.settings };
    // The directory may come from a backup (populate): nothing planted in it is followed.
    await usingDataDirectory(dataDir, async (directory) => {
      await directory.append(
        'postgresql.conf',
        `\n# pms throwaway cluster\n${Object.entries(settings)
          .map(([k, v]) => `${k} = ${formatSetting(v)}`)
          .join('\n')}\n`,
      );
      // TCP admits TLS only, so a client that fell back to plain text fails instead of passing.
      if (certificates && !options.populate) await directory.replace('pg_hba.conf', TLS_ONLY_HBA);
      if (sandbox && identity) {
        await directory.replace('pg_hba.conf', sandboxHba(superuser));
        await directory.replace(
          'pg_ident.conf',
          sandboxIdent(superuser, [clientOsUser(), identity.name, ...(sandbox.clientOsUsers ?? [])]),
        );
      }
    });
    await cluster.start();
    return cluster;
  } catch (error) {
    await cluster.destroy().catch(() => undefined);
    throw error;
  }
}

/** initdb's trust entries, with TCP ones turned into hostssl (a throwaway has no passwords). */
const TLS_ONLY_HBA = `# pms throwaway cluster: the socket as initdb made it; TCP only over TLS
local all all trust
local replication all trust
hostssl all all 127.0.0.1/32 trust
hostssl replication all 127.0.0.1/32 trust
`;

function clientOsUser(): string {
  try {
    return userInfo().username;
  } catch {
    throw new PmsError(
      'PMS_ERR_CONFIG',
      `uid ${process.getuid?.()} has no passwd entry: the sandbox authenticates pms-backup by OS user name`,
    );
  }
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-5).join(' | ') || 'no server output';
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
