import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findPgProgram } from '../postgres/binaries.js';
import { freePort } from '../postgres/free-port.js';
import { makeThrowawayTls } from '../postgres/throwaway-tls.js';
import { childEnv } from '../process/child-env.js';
import { runTool } from '../process/tool-process.js';
import { osUserIds } from './run-cli.js';

/**
 * A real Patroni cluster for tests: one etcd and N (default 3) Patroni members on free loopback
 * ports, all run as the postgres OS user, speaking verified TLS on TCP like production. Facts
 * about the packages: ../shared/notes/patroni.md. The harness only ever signals PIDs it started
 * (Patroni, etcd) or that those started (each member's postmaster and its descendants, which
 * Patroni detaches from itself the way pg_ctl does).
 */
export interface PatroniClusterOptions {
  /** Members to start (default 3: leader, sync standby, replica). */
  readonly members?: number;
  /** archive_command for every member; sets archive_mode = always (each member archives what it has). */
  readonly archiveCommand?: string;
  /** Environment for Patroni and so for postgres and archive_command (BACKUP_* for wal-push), on top of the allowlist. */
  readonly serverEnv?: Readonly<Record<string, string>>;
  /** Patroni's synchronous_mode_strict (default false: see docs/ha.md for the trade-off). */
  readonly synchronousModeStrict?: boolean;
  /** Patroni's DCS timings (defaults ttl 10, loop_wait 2, retry_timeout 5: fast but not flapping on 2 cores). */
  readonly ttl?: number;
  readonly loopWait?: number;
  readonly retryTimeout?: number;
  /** Extra postgresql.conf parameters (set cluster-wide through the DCS at bootstrap). */
  readonly parameters?: Readonly<Record<string, string | number | boolean>>;
  /** Seconds to wait for a leader and a sync standby after start (default 180). */
  readonly startTimeoutSeconds?: number;
}

export type PatroniRole = 'leader' | 'sync_standby' | 'replica';

export interface PatroniMemberStatus {
  readonly name: string;
  readonly role: PatroniRole | string;
  readonly state: string;
  readonly timeline: number | undefined;
  /** Bytes behind the leader as Patroni reports it ('unknown' when it has no position). */
  readonly lag: number | 'unknown' | undefined;
}

export interface PatroniMember {
  readonly name: string;
  /** Always 127.0.0.1: the TLS certificate names it. */
  readonly host: string;
  readonly port: number;
  readonly restApiPort: number;
  readonly restApiUrl: string;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly configFile: string;
  readonly logFile: string;
  /** Whether the harness has a Patroni process for this member right now. */
  readonly running: boolean;
  /** POSTGRES_* for this member alone (verify-full against the cluster's CA). */
  readonly postgresEnv: Readonly<Record<string, string>>;
}

export interface PatroniCluster {
  readonly scope: string;
  /** The directory holding every member's data, etcd's and the TLS files (removed by stop). */
  readonly root: string;
  readonly members: readonly PatroniMember[];
  /** The CA every member's certificate chains to (POSTGRES_SSLROOTCERT). */
  readonly caFile: string;
  readonly etcdUrl: string;
  /**
   * POSTGRES_* naming every member (POSTGRES_HOST=127.0.0.1,127.0.0.1,..., POSTGRES_PORT=p1,p2,...),
   * verify-full against caFile: the connection contract of docs/ha.md.
   */
  readonly postgresEnv: Readonly<Record<string, string>>;
  /** Patroni's view (GET /cluster) from the first running member that answers. */
  status(): Promise<PatroniMemberStatus[]>;
  /** The member whose REST API answers 200 to GET /primary (throws when none does). */
  leader(): Promise<PatroniMember>;
  /** The member Patroni lists as sync_standby (throws when none). */
  syncStandby(): Promise<PatroniMember>;
  /**
   * Waits until there is a leader, a sync standby, and every running member is running and
   * streaming on the leader's timeline; returns the leader and the sync standby.
   */
  waitForHealthy(timeoutSeconds?: number): Promise<{ leader: PatroniMember; syncStandby: PatroniMember }>;
  /** Waits for a leader other than `not` (after a failover); returns it and when its /primary first answered 200. */
  waitForNewLeader(not: PatroniMember, timeoutSeconds?: number): Promise<{ leader: PatroniMember; at: number }>;
  /**
   * A member's archiver for a failure message: pg_stat_archiver, and the lines of its log (where
   * PostgreSQL writes archive_command's stderr) that name the file it last failed on.
   */
  describeArchiver(member: PatroniMember): Promise<string>;
  /** Runs SQL with psql on a member's Unix socket as the superuser; returns trimmed unaligned output. */
  psql(member: PatroniMember, sql: string, database?: string): Promise<string>;
  /**
   * SIGKILLs the leader's Patroni, its postmaster and every process under it, as when its node
   * dies. Returns the killed member and the time of the kill (Date.now()).
   */
  killLeader(): Promise<{ member: PatroniMember; killedAt: number }>;
  /** SIGKILLs one member (Patroni, postmaster and descendants). */
  kill(member: PatroniMember): Promise<void>;
  /** Starts a member's Patroni again (after kill); it rejoins, with pg_rewind if needed. */
  restart(member: PatroniMember): Promise<void>;
  /** Kills every process the harness started and removes every file; safe to call twice. */
  stop(): Promise<void>;
}

const OS_USER = process.env['PMS_PG_OS_USER'] ?? 'postgres';
const PATRONI = process.env['PATRONI_BIN'] ?? 'patroni';
const ETCD = process.env['ETCD_BIN'] ?? 'etcd';

interface MemberState {
  info: Mutable<PatroniMember>;
  process: ChildProcess | undefined;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function formatParameter(value: string | number | boolean): string | number {
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  return value;
}

/** Starts etcd and the Patroni members, and waits for a leader and a sync standby. */
export async function startPatroniCluster(options: PatroniClusterOptions = {}): Promise<PatroniCluster> {
  const count = options.members ?? 3;
  const root = mkdtempSync(join(tmpdir(), 'pms-patroni-'));
  const ids = osUserIds(OS_USER);
  chownSync(root, ids.uid, ids.gid);
  const scope = `pms-${randomBytes(4).toString('hex')}`;
  const binDir = findPgProgram('postgres', process.env, 15).replace(/\/postgres$/, '');
  // One certificate for 127.0.0.1 serves every member: they all listen there.
  const tls = await makeThrowawayTls(join(root, 'tls'));
  for (const path of [join(root, 'tls'), tls.certFile, tls.keyFile]) chownSync(path, ids.uid, ids.gid);

  const processes: ChildProcess[] = [];
  const members: MemberState[] = [];
  let etcd: ChildProcess | undefined;
  let stopped = false;

  const spawnAsPostgres = (command: string, args: string[], logFile: string, env: NodeJS.ProcessEnv): ChildProcess => {
    const log = openSync(logFile, 'a', 0o600);
    try {
      chownSync(logFile, ids.uid, ids.gid);
      const child = spawn(command, args, { ...ids, cwd: root, env, stdio: ['ignore', log, log] });
      child.once('error', () => undefined);
      processes.push(child);
      return child;
    } finally {
      closeSync(log);
    }
  };

  const etcdPort = await freePort();
  const etcdPeerPort = await freePort();
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const etcdDir = join(root, 'etcd');
  mkdirSync(etcdDir, { mode: 0o700 });
  chownSync(etcdDir, ids.uid, ids.gid);

  // If this process is told to stop (Ctrl-C, the test runner's SIGTERM) or exits before stop()
  // ran, nothing of the cluster may outlive it: Patroni and postgres detach from us, so an
  // ordinary exit would leave them running. Synchronous, as 'exit' handlers must be.
  let emergencyStopped = false;
  const emergencyStop = (): void => {
    // Not guarded by `stopped`: a signal may arrive while stop() is under way.
    if (emergencyStopped) return;
    emergencyStopped = true;
    const victims: number[] = [];
    for (const m of members) {
      const postmaster = postmasterPid(m.info.dataDir);
      if (postmaster !== undefined) victims.push(postmaster, ...descendants(postmaster));
    }
    victims.push(...processesMentioning(root));
    for (const child of processes) if (child.pid !== undefined && child.exitCode === null) victims.push(child.pid);
    for (const pid of new Set(victims)) signal(pid, 'SIGKILL');
    const deadline = Date.now() + 5_000;
    while (victims.some(alive) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    rmSync(root, { recursive: true, force: true });
  };
  emergencyStops.add(emergencyStop);
  installExitHandlers();

  const cluster: PatroniCluster = {
    scope,
    root,
    members: [],
    caFile: tls.caFile,
    etcdUrl,
    postgresEnv: {},
    status,
    leader,
    async syncStandby() {
      const sync = (await status()).find((m) => m.role === 'sync_standby');
      if (!sync) throw new Error('Patroni lists no sync standby');
      return byName(sync.name);
    },
    async waitForHealthy(timeoutSeconds = 120) {
      return waitUntil(`a healthy Patroni cluster (leader, sync standby, all streaming)`, timeoutSeconds, async () => {
        const view = await status().catch(() => undefined);
        if (!view) return undefined;
        const lead = view.find((m) => m.role === 'leader' && m.state === 'running');
        const sync = view.find((m) => m.role === 'sync_standby' && m.state === 'running');
        if (!lead || !sync) return undefined;
        const running = members.filter((m) => m.process !== undefined).map((m) => m.info.name);
        const allUp = running.every((name) => {
          const m = view.find((v) => v.name === name);
          return m !== undefined && m.state === 'running' && m.timeline === lead.timeline;
        });
        if (!allUp) return undefined;
        // Patroni's view lags the servers by up to loop_wait: the leader must also answer /primary.
        if ((await restStatus(byName(lead.name), '/primary')) !== 200) return undefined;
        return { leader: byName(lead.name), syncStandby: byName(sync.name) };
      });
    },
    async waitForNewLeader(not, timeoutSeconds = 90) {
      return waitUntil(`a new leader other than ${not.name}`, timeoutSeconds, async () => {
        for (const m of members) {
          if (m.info.name === not.name || m.process === undefined) continue;
          if ((await restStatus(m.info, '/primary')) === 200) return { leader: m.info as PatroniMember, at: Date.now() };
        }
        return undefined;
      });
    },
    async describeArchiver(member) {
      const row = await cluster
        .psql(
          member,
          "SELECT coalesce(last_archived_wal, '-') || ' ' || failed_count || ' ' || coalesce(last_failed_wal, '-') FROM pg_stat_archiver",
        )
        .catch((error: Error) => `(psql failed: ${error.message})`);
      const [archived, failures, failed] = row.split(' ');
      const lines =
        failed && failed !== '-'
          ? readFileSync(member.logFile, 'utf8')
              .split('\n')
              .filter((l) => l.includes(failed) || l.includes('PMS_ERR_'))
              .slice(-6)
          : [];
      return `${member.name}: last archived ${archived}, ${failures} failures, last failed ${failed}${lines.length > 0 ? `\n${lines.join('\n')}` : ''}`;
    },
    async psql(member, sql, database = 'postgres') {
      const psql = findPgProgram('psql', process.env, 15);
      const env = childEnv({ PGHOST: member.socketDir, PGPORT: String(member.port), PGUSER: 'postgres', PGDATABASE: database });
      const result = await runTool(psql, ['-X', '-v', 'ON_ERROR_STOP=1', '-qAt'], { env, input: sql });
      return result.stdout.trim();
    },
    async killLeader() {
      const member = await leader();
      const killedAt = Date.now();
      await kill(member);
      return { member, killedAt };
    },
    kill,
    async restart(member) {
      const state = members.find((m) => m.info.name === member.name);
      if (!state) throw new Error(`no member ${member.name}`);
      if (state.process) throw new Error(`${member.name} is running`);
      launch(state);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const m of members) await kill(m.info).catch(() => undefined);
      if (etcd) await killAndWait(etcd);
      for (const child of processes) await killAndWait(child);
      rmSync(root, { recursive: true, force: true });
      emergencyStops.delete(emergencyStop);
    },
  };

  function byName(name: string): PatroniMember {
    const m = members.find((x) => x.info.name === name);
    if (!m) throw new Error(`Patroni named a member ${name} the harness did not start`);
    return m.info;
  }

  async function status(): Promise<PatroniMemberStatus[]> {
    for (const m of members) {
      if (m.process === undefined) continue;
      try {
        const response = await fetch(`${m.info.restApiUrl}/cluster`, { signal: AbortSignal.timeout(3_000) });
        if (!response.ok) continue;
        const body = (await response.json()) as { members?: Record<string, unknown>[] };
        return (body.members ?? []).map((x) => ({
          name: String(x['name']),
          role: String(x['role']),
          state: String(x['state']),
          timeline: typeof x['timeline'] === 'number' ? x['timeline'] : undefined,
          lag: typeof x['lag'] === 'number' || x['lag'] === 'unknown' ? (x['lag'] as number | 'unknown') : undefined,
        }));
      } catch {
        // that member's API is not answering: ask the next
      }
    }
    throw new Error('no Patroni REST API answered GET /cluster');
  }

  async function leader(): Promise<PatroniMember> {
    for (const m of members) {
      if (m.process !== undefined && (await restStatus(m.info, '/primary')) === 200) return m.info;
    }
    throw new Error('no Patroni member answers 200 to GET /primary');
  }

  async function kill(member: PatroniMember): Promise<void> {
    const state = members.find((m) => m.info.name === member.name);
    if (!state) throw new Error(`no member ${member.name}`);
    const postmaster = postmasterPid(state.info.dataDir);
    // Collected before any signal: once the postmaster dies its children are re-parented. The
    // background WAL pusher runs in a session of its own, so it is found by its argument; it
    // dies with its node, and would otherwise linger, since a SIGKILLed postmaster leaves its
    // postmaster.pid behind and the pusher takes that for a live server.
    const victims = [
      ...(postmaster === undefined ? [] : [postmaster, ...descendants(postmaster)]),
      ...processesMentioning(`wal-pusher ${state.info.dataDir}/`),
    ];
    const patroni = state.process;
    if (patroni) {
      // Patroni first, so it cannot restart postgres in between.
      await killAndWait(patroni);
      state.process = undefined;
      state.info.running = false;
    }
    for (const pid of victims) signal(pid, 'SIGKILL');
    await waitUntil(`${member.name}'s processes gone`, 30, () => (victims.some(alive) ? undefined : true));
  }

  function launch(state: MemberState): void {
    const env = childEnv({ ...options.serverEnv, PGTZ: 'UTC' });
    state.process = spawnAsPostgres(PATRONI, [state.info.configFile], state.info.logFile, env);
    state.info.running = true;
  }

  try {
    etcd = spawnAsPostgres(
      ETCD,
      [
        '--name',
        'e1',
        '--data-dir',
        etcdDir,
        '--listen-client-urls',
        etcdUrl,
        '--advertise-client-urls',
        etcdUrl,
        '--listen-peer-urls',
        `http://127.0.0.1:${etcdPeerPort}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${etcdPeerPort}`,
        '--initial-cluster',
        `e1=http://127.0.0.1:${etcdPeerPort}`,
        '--log-level',
        'warn',
      ],
      join(root, 'etcd.log'),
      childEnv(),
    );
    await waitUntil('etcd healthy', 60, async () => {
      if (etcd?.exitCode !== null) throw new Error(`etcd exited: ${tail(join(root, 'etcd.log'))}`);
      const response = await fetch(`${etcdUrl}/health`).catch(() => undefined);
      return response?.ok ? true : undefined;
    });

    const parameters: Record<string, string | number> = {
      wal_level: 'replica',
      hot_standby: 'on',
      max_wal_senders: 10,
      max_replication_slots: 10,
      wal_keep_size: '256MB',
      // The cluster is disposable and the tests kill processes, not machines: the page cache survives.
      fsync: 'off',
      ...(options.archiveCommand ? { archive_mode: 'always', archive_command: options.archiveCommand, archive_timeout: 0 } : {}),
    };
    for (const [k, v] of Object.entries(options.parameters ?? {})) parameters[k] = formatParameter(v);

    const hba = [
      'local all all trust',
      'local replication all trust',
      'hostssl all all 127.0.0.1/32 trust',
      'hostssl replication all 127.0.0.1/32 trust',
    ];
    for (let i = 1; i <= count; i += 1) {
      const name = `m${i}`;
      const dir = join(root, name);
      mkdirSync(dir, { mode: 0o700 });
      chownSync(dir, ids.uid, ids.gid);
      const port = await freePort();
      const restApiPort = await freePort();
      const dataDir = join(dir, 'data');
      const configFile = join(dir, 'patroni.yml');
      const config = {
        scope,
        name,
        log: { level: 'INFO' },
        restapi: { listen: `127.0.0.1:${restApiPort}`, connect_address: `127.0.0.1:${restApiPort}` },
        etcd3: { hosts: [`127.0.0.1:${etcdPort}`] },
        bootstrap: {
          dcs: {
            ttl: options.ttl ?? 10,
            loop_wait: options.loopWait ?? 2,
            retry_timeout: options.retryTimeout ?? 5,
            maximum_lag_on_failover: 1048576,
            synchronous_mode: true,
            synchronous_mode_strict: options.synchronousModeStrict ?? false,
            postgresql: { use_pg_rewind: true, use_slots: true, parameters },
          },
          // Checksums let pg_rewind bring a killed leader back as a replica.
          initdb: [{ encoding: 'UTF8' }, { locale: 'C.UTF-8' }, 'data-checksums'],
        },
        postgresql: {
          listen: `127.0.0.1:${port}`,
          connect_address: `127.0.0.1:${port}`,
          use_unix_socket: true,
          data_dir: dataDir,
          bin_dir: binDir,
          pgpass: join(dir, 'pgpass'),
          authentication: {
            superuser: { username: 'postgres', password: 'throwaway' },
            replication: { username: 'replicator', password: 'throwaway', sslmode: 'verify-full', sslrootcert: tls.caFile },
            rewind: { username: 'postgres', password: 'throwaway', sslmode: 'verify-full', sslrootcert: tls.caFile },
          },
          parameters: {
            unix_socket_directories: dir,
            ssl: 'on',
            ssl_cert_file: tls.certFile,
            ssl_key_file: tls.keyFile,
          },
          pg_hba: hba,
          remove_data_directory_on_rewind_failure: true,
          remove_data_directory_on_diverged_timelines: true,
        },
      };
      // JSON is YAML: Patroni reads it as its configuration file.
      writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
      chownSync(configFile, ids.uid, ids.gid);
      const info: Mutable<PatroniMember> = {
        name,
        host: '127.0.0.1',
        port,
        restApiPort,
        restApiUrl: `http://127.0.0.1:${restApiPort}`,
        dataDir,
        socketDir: dir,
        configFile,
        logFile: join(dir, 'patroni.log'),
        running: false,
        postgresEnv: {
          POSTGRES_HOST: '127.0.0.1',
          POSTGRES_PORT: String(port),
          POSTGRES_USER: 'postgres',
          POSTGRES_DB: 'postgres',
          POSTGRES_SSLMODE: 'verify-full',
          POSTGRES_SSLROOTCERT: tls.caFile,
        },
      };
      members.push({ info, process: undefined });
    }
    (cluster as Mutable<PatroniCluster>).members = members.map((m) => m.info);
    (cluster as Mutable<PatroniCluster>).postgresEnv = {
      POSTGRES_HOST: members.map(() => '127.0.0.1').join(','),
      POSTGRES_PORT: members.map((m) => String(m.info.port)).join(','),
      POSTGRES_USER: 'postgres',
      POSTGRES_DB: 'postgres',
      POSTGRES_SSLMODE: 'verify-full',
      POSTGRES_SSLROOTCERT: tls.caFile,
    };
    // The first member bootstraps alone, so it is the initial leader and the others clone it
    // instead of racing for the initialize key.
    const first = members[0];
    if (!first) throw new Error('a Patroni cluster needs at least one member');
    launch(first);
    await waitUntil(`${first.info.name} to bootstrap and lead`, options.startTimeoutSeconds ?? 180, async () => {
      if (first.process?.exitCode !== null) throw new Error(`patroni ${first.info.name} exited: ${tail(first.info.logFile)}`);
      return (await restStatus(first.info, '/primary')) === 200 ? true : undefined;
    });
    for (const m of members.slice(1)) launch(m);
    await cluster.waitForHealthy(options.startTimeoutSeconds ?? 180);
    return cluster;
  } catch (error) {
    const logs = members.map((m) => `${m.info.name}: ${tail(m.info.logFile)}`).join('\n');
    await cluster.stop().catch(() => undefined);
    throw new Error(`Patroni cluster did not start: ${(error as Error).message}\n${logs}`, { cause: error });
  }
}

/** Scoped helper: the cluster is stopped whatever `use` does. */
export async function usingPatroniCluster<T>(options: PatroniClusterOptions, use: (cluster: PatroniCluster) => Promise<T>): Promise<T> {
  const cluster = await startPatroniCluster(options);
  try {
    return await use(cluster);
  } finally {
    await cluster.stop();
  }
}

/** Synchronous stops of the clusters of this process not stopped yet. */
const emergencyStops = new Set<() => void>();
let exitHandlersInstalled = false;

function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  const stopAll = () => {
    for (const stop of emergencyStops) stop();
    emergencyStops.clear();
  };
  process.once('exit', stopAll);
  for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      stopAll();
      process.removeListener(name, onSignal);
      // Ours was the only handler: die of the signal as the process would have without us.
      if (process.listenerCount(name) === 0) process.kill(process.pid, name);
    };
    process.on(name, onSignal);
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/** Live processes whose command line contains `text` (a path only this cluster uses). */
function processesMentioning(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').includes(text) && alive(Number(entry)))
        found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

async function restStatus(member: PatroniMember, path: string): Promise<number | undefined> {
  try {
    const response = await fetch(`${member.restApiUrl}${path}`, { signal: AbortSignal.timeout(2_000) });
    await response.body?.cancel();
    return response.status;
  } catch {
    return undefined;
  }
}

async function waitUntil<T>(what: string, seconds: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${what}`);
    await sleep(100);
  }
}

/** The postmaster PID of a data directory, only if that process is a postgres running on it. */
function postmasterPid(dataDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmdline[0]?.endsWith('postgres') && cmdline.includes(dataDir) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Every process under `pid` (children, their children...), from /proc. */
function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name is in parentheses and may hold spaces: the fields after its last ')' are fixed.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(entry), Number(fields[1]));
    } catch {
      // exited meanwhile
    }
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const current = queue.shift() as number;
    for (const [child, parent] of parentOf) {
      if (parent === current) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // A zombie has exited; only its parent's wait is missing.
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-8).join('\n');
  } catch {
    return '(no log)';
  }
}
