/**
 * A real Ceph RADOS Gateway for tests: one monitor, one memstore OSD (data in RAM) and radosgw,
 * no cephx, everything on 127.0.0.1 and under one temporary directory passed with `-c`, so
 * nothing in /etc/ceph is read or written and two harnesses run side by side. RGW is the S3
 * that honours what s3rver ignores (If-None-Match, versioning, Object Lock, bucket policies),
 * so write-once and per-role access are proved against it.
 *
 * Needs the Debian packages ceph-mon ceph-osd radosgw ceph-common (see .ci/run).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { CreateBucketCommand, PutBucketPolicyCommand, PutBucketVersioningCommand, S3Client } from '@aws-sdk/client-s3';
import type { RepositoryConfig, S3Settings } from '../config/config.js';
import { Secret } from '../config/secret.js';
import { freePort } from '../postgres/free-port.js';

const run = promisify(execFile);

/** An RGW user and its S3 keys (test credentials, generated per harness; not secrets). */
export interface RgwUser {
  readonly uid: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** The principal a bucket policy names this user by. */
  readonly arn: string;
}

export interface BucketOptions {
  /** Versioning enabled (implied by objectLock). */
  readonly versioned?: boolean;
  /** Created with Object Lock enabled (versioned for ever; no default retention is set). */
  readonly objectLock?: boolean;
  /** The user creating (and owning) the bucket; default the harness's first user. */
  readonly owner?: RgwUser;
}

export interface RepositoryOptions {
  readonly prefix?: string;
  readonly user?: RgwUser;
  readonly objectLock?: S3Settings['objectLock'];
}

export interface CephRgwHarness {
  /** http://127.0.0.1:<port> */
  readonly endpoint: string;
  /** Everything the cluster keeps: ceph.conf, the monitor store, logs. Removed by destroy(). */
  readonly directory: string;
  /** The user created at start; it owns the buckets createBucket makes. */
  readonly user: RgwUser;
  /** Wall time from nothing to an S3 endpoint with a user, in ms. */
  readonly startupMs: number;
  /** Where that time went (ms since start at the end of each step), for tests' diagnostics. */
  readonly startupSteps: Readonly<Record<string, number>>;
  /** Creates another user with the given (or generated) keys, e.g. one per role for policy tests. */
  createUser(uid: string, keys?: { readonly accessKeyId: string; readonly secretAccessKey: string }): Promise<RgwUser>;
  /** An SDK client set up the way RGW needs (path style, checksums only when required). Close it with destroy(). */
  client(user?: RgwUser): S3Client;
  createBucket(name: string, options?: BucketOptions): Promise<void>;
  /** Applies a bucket policy document (as the bucket owner by default). */
  putBucketPolicy(bucket: string, policy: unknown, owner?: RgwUser): Promise<void>;
  /** S3Settings for the driver, as loadBackupConfig would build them. */
  settings(bucket: string, options?: RepositoryOptions): S3Settings;
  repository(bucket: string, options?: RepositoryOptions): RepositoryConfig;
  /** The environment loadBackupConfig reads, for CLI tests. */
  env(bucket: string, options?: Omit<RepositoryOptions, 'objectLock'>): Record<string, string>;
  /** Runs radosgw-admin against this cluster and returns its stdout. */
  admin(args: readonly string[]): Promise<string>;
  /** Kills every daemon (SIGKILL: memstore has nothing to flush) and removes the directory. Safe to call twice. */
  destroy(): Promise<void>;
}

export interface CephRgwOptions {
  /** Parent of the cluster directory (default the OS temp dir). */
  readonly parentDir?: string;
  /** Memstore capacity. A full memstore OSD blocks writes instead of failing them, so be generous. */
  readonly memstoreBytes?: number;
}

const READY_TIMEOUT_MS = 60_000;
const REGION = 'us-east-1';

/** Whether the binaries are installed (tests that need RGW can say why they skip). */
export function cephRgwAvailable(): boolean {
  return ['/usr/bin/ceph-mon', '/usr/bin/ceph-osd', '/usr/bin/radosgw', '/usr/bin/radosgw-admin'].every((p) => existsSync(p));
}

function cephConf(dir: string, fsid: string, monPort: number, rgwPort: number, memstoreBytes: number): string {
  return `[global]
fsid = ${fsid}
mon host = [v2:127.0.0.1:${monPort}]
public addr = 127.0.0.1
# No cephx: nothing but this test talks to the cluster, and it only listens on loopback.
auth cluster required = none
auth service required = none
auth client required = none
keyring = /dev/null
ms bind msgr1 = false
ms bind ipv6 = false
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
pid file = ${dir}/run/$name.pid
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
# radosgw creates its pools one by one on first start; with the defaults each new pool waits
# for a paxos round and a monitor tick (5 s) before its placement groups exist.
paxos propose interval = 0.01
paxos min wait = 0.01
mon tick interval = 1

[mon]
mon data = ${dir}/mon.$id

[osd]
osd objectstore = memstore
osd data = ${dir}/osd.$id
memstore device bytes = ${memstoreBytes}

[client]
# With auth none the default (secure) mode fails and radosgw retries for ever.
ms mon client mode = crc

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${dir}/rgw
# The driver sends x-amz-server-side-encryption: AES256 (the production policy demands it);
# RGW refuses any SSE header over plain HTTP unless told otherwise. It accepts SSE-S3 and does
# not apply it, which is fine: the data is OpenPGP-encrypted before it leaves the process.
rgw crypt require ssl = false
# Deleted data is freed by garbage collection; the default waits two hours.
rgw gc obj min wait = 30
rgw gc processor period = 30
`;
}

function tailOf(path: string, lines = 12): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function logIncludes(path: string, text: string): boolean {
  try {
    return readFileSync(path, 'utf8').includes(text);
  } catch {
    return false;
  }
}

/** True once anything answers HTTP on the endpoint (RGW answers / only when its pools exist). */
function answers(endpoint: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(endpoint, { method: 'GET', timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
    req.end();
  });
}

interface Daemon {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  readonly log: string;
}

/**
 * Daemons run in the foreground (-f) as our children, so Node reaps them when they die (a
 * daemonised Ceph process re-parented to a container's init can linger as a zombie), and under
 * `setpriv --pdeathsig KILL` so they die with the test process even if it is killed itself.
 */
function startDaemon(name: string, command: string, args: readonly string[], log: string): Daemon {
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', command, ...args], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  return { name, child, exited, log };
}

const everyHarness = new Set<() => void>();
let exitHookInstalled = false;

function killOnExit(kill: () => void): void {
  everyHarness.add(kill);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const k of everyHarness) k();
  });
}

/**
 * Starts a single-host Ceph cluster with radosgw and one S3 user. Pair with destroy()
 * (e.g. `after(() => rgw.destroy())`); one harness per test file, buckets per test.
 */
export async function startCephRgw(options: CephRgwOptions = {}): Promise<CephRgwHarness> {
  const started = Date.now();
  const dir = mkdtempSync(join(options.parentDir ?? tmpdir(), 'pms-rgw-'));
  const conf = join(dir, 'ceph.conf');
  const daemons: Daemon[] = [];
  const clients: S3Client[] = [];
  let destroyed = false;
  const steps: Record<string, number> = {};
  const step = (name: string): void => {
    steps[name] = Date.now() - started;
  };

  const killAll = (): void => {
    for (const d of daemons) if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
  };
  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    for (const client of clients) client.destroy();
    killAll();
    await Promise.all(daemons.map((d) => d.exited));
    everyHarness.delete(killAll);
    rmSync(dir, { recursive: true, force: true });
  };
  killOnExit(killAll);

  try {
    for (const sub of ['run', 'log', 'osd.0']) mkdirSync(join(dir, sub));
    const [monPort, rgwPort] = [await freePort(), await freePort()];
    const fsid = randomUUID();
    writeFileSync(conf, cephConf(dir, fsid, monPort, rgwPort, options.memstoreBytes ?? 4 * 1024 ** 3));
    const c = ['-c', conf];

    // The OSD is put into the initial osdmap (instead of `ceph osd new` through the slow Python
    // CLI against a running monitor), and --no-mon-config lets its mkfs run in parallel with the
    // monitor's.
    await Promise.all([
      run('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, join(dir, 'monmap')]),
      run('osdmaptool', [...c, '--createsimple', '1', '--pg-bits', '3', '--pgp-bits', '3', join(dir, 'osdmap')]),
    ]);
    step('maps');
    await Promise.all([
      run('ceph-mon', [...c, '--mkfs', '-i', 'a', '--monmap', join(dir, 'monmap'), '--osdmap', join(dir, 'osdmap')]),
      run('ceph-osd', [...c, '--no-mon-config', '--mkfs', '-i', '0']),
    ]);
    step('mkfs');
    daemons.push(startDaemon('ceph-mon', 'ceph-mon', [...c, '-i', 'a', '-f'], join(dir, 'log', 'mon.a.log')));
    daemons.push(startDaemon('ceph-osd', 'ceph-osd', [...c, '-i', '0', '-f'], join(dir, 'log', 'osd.0.log')));
    const deadline = Date.now() + READY_TIMEOUT_MS;
    const waitFor = async (what: string, ready: () => boolean | Promise<boolean>, log: string): Promise<void> => {
      while (!(await ready())) {
        const dead = daemons.find((d) => d.child.exitCode !== null || d.child.signalCode !== null);
        if (dead) throw new Error(`${dead.name} exited during start-up:\n${tailOf(dead.log)}`);
        if (Date.now() > deadline) throw new Error(`${what} within ${READY_TIMEOUT_MS} ms:\n${tailOf(log)}`);
        await sleep(20);
      }
    };
    // radosgw creates its pools at once; a pool created before the OSD is up gets its placement
    // groups only on a later monitor pass (4-5 s), so radosgw starts once the OSD is active.
    const osdLog = join(dir, 'log', 'osd.0.log');
    await waitFor('the OSD did not become active', () => logIncludes(osdLog, 'state: booting -> active'), osdLog);
    step('osd');
    const rgwLog = join(dir, 'log', 'client.rgw.a.log');
    daemons.push(startDaemon('radosgw', 'radosgw', [...c, '-n', 'client.rgw.a', '-f'], rgwLog));
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    await waitFor('radosgw did not answer', () => answers(endpoint), rgwLog);

    step('rgw');
    const admin = async (args: readonly string[]): Promise<string> => (await run('radosgw-admin', [...c, ...args])).stdout;
    const createUser = async (uid: string, keys?: { readonly accessKeyId: string; readonly secretAccessKey: string }): Promise<RgwUser> => {
      // Without given keys radosgw-admin makes them and prints them, so no secret is in argv;
      // given keys can only be passed as arguments (throwaway keys of a loopback-only cluster).
      const given =
        keys === undefined
          ? ['--gen-access-key', '--gen-secret']
          : [`--access-key=${keys.accessKeyId}`, `--secret-key=${keys.secretAccessKey}`];
      const out = JSON.parse(await admin(['user', 'create', `--uid=${uid}`, `--display-name=${uid}`, ...given])) as {
        keys?: Array<{ user?: string; access_key?: string; secret_key?: string }>;
      };
      const made = out.keys?.find((k) => k.user === uid);
      if (made?.access_key === undefined || made.secret_key === undefined) throw new Error(`radosgw-admin created ${uid} without S3 keys`);
      return { uid, accessKeyId: made.access_key, secretAccessKey: made.secret_key, arn: `arn:aws:iam:::user/${uid}` };
    };
    const user = await createUser('pms-owner');
    step('user');

    const client = (who: RgwUser = user): S3Client => {
      const made = new S3Client({
        region: REGION,
        endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: who.accessKeyId, secretAccessKey: who.secretAccessKey },
        // With the SDK's default (WHEN_SUPPORTED) a streamed PutObject is sent aws-chunked
        // without a length, which RGW refuses with 411 MissingContentLength.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        maxAttempts: 1,
      });
      clients.push(made);
      return made;
    };
    const ownerClients = new Map<string, S3Client>();
    const ownerClient = (who: RgwUser): S3Client => {
      let found = ownerClients.get(who.uid);
      if (found === undefined) {
        found = client(who);
        ownerClients.set(who.uid, found);
      }
      return found;
    };

    const settings = (bucket: string, opts: RepositoryOptions = {}): S3Settings => {
      const who = opts.user ?? user;
      return {
        bucket,
        prefix: (opts.prefix ?? '').replace(/^\/+|\/+$/g, ''),
        region: REGION,
        endpoint,
        forcePathStyle: true,
        accessKeyId: new Secret(who.accessKeyId),
        secretAccessKey: new Secret(who.secretAccessKey),
        objectLock: opts.objectLock,
      };
    };

    const harness: CephRgwHarness = {
      endpoint,
      directory: dir,
      user,
      startupMs: Date.now() - started,
      startupSteps: steps,
      createUser,
      client,
      async createBucket(name, opts = {}) {
        const s3 = ownerClient(opts.owner ?? user);
        await s3.send(new CreateBucketCommand({ Bucket: name, ...(opts.objectLock ? { ObjectLockEnabledForBucket: true } : {}) }));
        if (opts.versioned && !opts.objectLock) {
          await s3.send(new PutBucketVersioningCommand({ Bucket: name, VersioningConfiguration: { Status: 'Enabled' } }));
        }
      },
      async putBucketPolicy(bucket, policy, owner = user) {
        await ownerClient(owner).send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(policy) }));
      },
      settings,
      repository(bucket, opts = {}) {
        const s3 = settings(bucket, opts);
        return { kind: 's3', url: `s3://${bucket}${s3.prefix ? `/${s3.prefix}` : ''}`, s3 };
      },
      env(bucket, opts = {}) {
        const who = opts.user ?? user;
        const prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
        return {
          BACKUP_REPOSITORY: `s3://${bucket}${prefix ? `/${prefix}` : ''}`,
          S3_ENDPOINT: endpoint,
          S3_FORCE_PATH_STYLE: 'true',
          AWS_REGION: REGION,
          AWS_ACCESS_KEY_ID: who.accessKeyId,
          AWS_SECRET_ACCESS_KEY: who.secretAccessKey,
        };
      },
      admin,
      destroy,
    };
    return harness;
  } catch (error) {
    await destroy();
    throw error;
  }
}

/** Runs `use` with a fresh cluster and always destroys it afterwards. */
export async function usingCephRgw<T>(options: CephRgwOptions, use: (rgw: CephRgwHarness) => Promise<T>): Promise<T> {
  const rgw = await startCephRgw(options);
  try {
    return await use(rgw);
  } finally {
    await rgw.destroy();
  }
}
