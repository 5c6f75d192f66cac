import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, beforeEach, describe, test } from 'node:test';
import { type DecryptionKeys, loadDecryptionKeys } from '../../../crypto/keys.js';
import { type TrustPolicy, loadTrustedSigners } from '../../../crypto/signing.js';
import { startThrowawayCluster, type ThrowawayCluster } from '../../../postgres/throwaway-cluster.js';
import { S3Storage } from '../../../storage/s3/s3-storage.js';
import { type ArchiveFixture, createArchiveFixture } from '../../../testing/archive-fixture.js';
import { type CliResult, runCli } from '../../../testing/run-cli.js';
import { type S3FaultProxy, startS3FaultProxy } from '../../../testing/s3-fault-proxy.js';
import { type S3rverHarness, startS3rver } from '../../../testing/s3rver-harness.js';
import { WAL_SEGMENT_BYTES } from '../../../wal/wal-file-name.js';
import { runPrefetcher } from '../../wal-fetch/prefetch/prefetcher.js';
import { LOG_FILE, SPOOL_ROOT, livePrefetcher, markWanted, spoolDirectory } from '../../wal-fetch/prefetch/spool.js';
import { restorePitr } from './restore-pitr.js';
import { archiveCommand } from './recovery-settings.js';

/**
 * Recovery through an object store that misbehaves: wal-fetch with its prefetcher, and a real
 * PostgreSQL 15 recovering through `restore --pitr`'s restore_command, against s3rver behind the
 * fault proxy. What must hold: wal-fetch never exits 0 for, and the prefetcher never spools, a
 * partial segment; a transient fault is ridden out and recovery reaches the same rows; a fault
 * that does not go away stops recovery with the reason in the server's log, within a bound, and
 * leaves a data directory that still says it is recovering (recovery.signal, not in production),
 * which a later start completes once the store is well again.
 */
const BUCKET = 'pms-pitr-faults';
/** 4 s of silence per attempt: above the 2 s latency injected below, which must be waited out, not timed out. */
const TUNING = {
  BACKUP_S3_MAX_ATTEMPTS: '3',
  BACKUP_S3_REQUEST_TIMEOUT_SECONDS: '4',
  BACKUP_S3_CONNECT_TIMEOUT_SECONDS: '2',
};
/** A failed recovery must stop within this (a hang would be minutes: 3 x 120 s per request with the defaults). */
const BOUND_MS = 90_000;
/** Past the object's first bytes, well inside it (each segment holds several hundred kB of rows). */
const CUT_AFTER = 4096;

let fixture: ArchiveFixture;
let s3: S3rverHarness;
let proxy: S3FaultProxy;
let source: ThrowawayCluster;
const restored: ThrowawayCluster[] = [];
let keys: DecryptionKeys;
let trust: TrustPolicy;
let systemIdentifier: string;
let expectedRows: string;
/** Segments archived after the base backup's stop segment, oldest first. */
let walAfterBackup: string[];
/** The recovering server's environment: its restore_command talks to the proxy. */
let serverEnv: Record<string, string>;

const objectKey = (name: string): RegExp => new RegExp(`/${name}\\.zst\\.gpg$`);
const rows = (cluster: ThrowawayCluster) =>
  cluster.psql("SELECT count(*), sum(value), md5(string_agg(note, '' ORDER BY id)) FROM reading", 'patient_telemetry');
const serverLog = (cluster: ThrowawayCluster) => readFileSync(join(dirname(cluster.dataDir), 'server.log'), 'utf8');

function direct(): S3Storage {
  const repository = s3.repository('main');
  if (repository.kind !== 's3') throw new Error('s3rver gives an s3 repository');
  return new S3Storage(repository.s3);
}

function throughProxy(): S3Storage {
  const repository = s3.repository('main');
  if (repository.kind !== 's3') throw new Error('s3rver gives an s3 repository');
  return new S3Storage(
    { ...repository.s3, endpoint: proxy.endpoint },
    { maxAttempts: 3, socketTimeoutMs: 4000, connectionTimeoutMs: 2000 },
  );
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 120_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function timed(run: () => Promise<CliResult>): Promise<CliResult & { ms: number }> {
  const started = Date.now();
  const result = await run();
  return { ...result, ms: Date.now() - started };
}

/** Segments and temporary files in a spool directory. */
function spoolContents(directory: string): { segments: string[]; temporary: string[] } {
  const entries = existsSync(directory) ? readdirSync(directory) : [];
  return {
    segments: entries.filter((e) => /^[0-9A-F]{24}$/.test(e)).sort(),
    temporary: entries.filter((e) => e.startsWith('.pms-fetch-') && !e.includes('-wanted-')),
  };
}

/** restore --pitr's data directory (base backup read directly, WAL through the proxy) and a server started on it. */
async function restoreAndStart(): Promise<ThrowawayCluster> {
  const cluster = await startThrowawayCluster({
    settings: {},
    serverEnv,
    populate: async (dataDir) => {
      const storage = direct();
      try {
        await restorePitr({ storage, keys, trust, target: 'latest', dataDir, prefetch: true });
      } finally {
        await storage.close();
      }
    },
  });
  restored.push(cluster);
  return cluster;
}

/** A data directory of the source system as recovery has it: pg_control (in archive recovery) and pg_wal/. */
function recoveringDataDir(name: string): string {
  const dataDir = join(fixture.work, name);
  mkdirSync(join(dataDir, 'global'), { recursive: true });
  mkdirSync(join(dataDir, 'pg_wal'), { recursive: true });
  const control = readFileSync(join(source.dataDir, 'global', 'pg_control'));
  control.writeUInt32LE(5, 16); // DB_IN_ARCHIVE_RECOVERY: the prefetcher leaves a server in production alone.
  writeFileSync(join(dataDir, 'global', 'pg_control'), control);
  return dataDir;
}

before(async () => {
  [fixture, s3] = await Promise.all([createArchiveFixture('pitr-faults'), startS3rver({ bucket: BUCKET })]);
  proxy = await startS3FaultProxy(s3.endpoint);
  keys = await loadDecryptionKeys(fixture.key.privateKeyFile, fixture.key.passphraseFile);
  trust = { trusted: await loadTrustedSigners(fixture.key.publicKeyFile) };
  // The source archives straight to s3rver: the faults are for recovery only.
  const archiveEnv = { ...fixture.env, ...s3.env('main'), ...TUNING };
  source = await startThrowawayCluster({
    settings: { archive_mode: 'on', wal_level: 'replica', archive_command: archiveCommand() },
    serverEnv: archiveEnv,
  });
  systemIdentifier = await source.psql('SELECT system_identifier FROM pg_control_system()');
  await source.psql('CREATE DATABASE patient_telemetry');
  await source.psql('CREATE TABLE reading (id bigserial PRIMARY KEY, value int, note text)', 'patient_telemetry');
  const backup = await runCli('pms-backup', ['base-backup', '--json'], { ...source.postgresEnv, ...archiveEnv });
  assert.equal(backup.code, 0, backup.stderr);
  const stop = (JSON.parse(backup.stdout) as { stopWalSegment: string }).stopWalSegment;
  // Eight segments after the backup, each with rows whose text does not compress away.
  for (let i = 1; i <= 8; i += 1) {
    await source.psql(
      `INSERT INTO reading (value, note) SELECT g * ${i}, md5(g::text || random()::text) FROM generate_series(1, 3000) g; SELECT pg_switch_wal()`,
      'patient_telemetry',
    );
  }
  const last = await source.psql('SELECT pg_walfile_name(pg_current_wal_lsn() - 1)');
  await waitFor(`${last} archived`, async () =>
    (await source.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")) >= last ? true : undefined,
  );
  expectedRows = await rows(source);
  const storage = direct();
  try {
    const names: string[] = [];
    for await (const object of storage.list('wal/00000001/')) {
      const name = /([0-9A-F]{24})\.zst\.gpg$/.exec(object.key)?.[1];
      if (name !== undefined && name > stop) names.push(name);
    }
    walAfterBackup = names.sort();
  } finally {
    await storage.close();
  }
  assert.ok(walAfterBackup.length >= 8, `segments after the backup: ${walAfterBackup.join(', ')}`);
  serverEnv = { ...archiveEnv, S3_ENDPOINT: proxy.endpoint };
});

after(async () => {
  for (const cluster of restored) await cluster.destroy().catch(() => undefined);
  await source?.destroy();
  await proxy?.close();
  await s3?.destroy();
  fixture?.remove();
});

beforeEach(() => proxy.reset());

describe('object-store faults: the wal-fetch prefetcher', () => {
  test('a segment cut mid-body and one stalled on every attempt never enter the spool; SlowDown once and 2 s latency are ridden out', async () => {
    const [first, reset, stalled, slowed, late, plain] = walAfterBackup as [string, string, string, string, string, string];
    proxy.add({ method: 'GET', key: objectKey(reset), fault: { kind: 'reset-response', afterBytes: CUT_AFTER } });
    proxy.add({ method: 'GET', key: objectKey(stalled), fault: { kind: 'stall', afterBytes: CUT_AFTER } });
    proxy.add({ method: 'GET', key: objectKey(slowed), nth: 1, fault: { kind: 'error', status: 503 } });
    proxy.add({ method: 'GET', key: objectKey(late), fault: { kind: 'latency', ms: 2000 } });
    const dataDir = recoveringDataDir('prefetch-faults');
    const directory = spoolDirectory(dataDir, systemIdentifier, false);
    mkdirSync(directory, { recursive: true });
    markWanted(directory, first);
    const logged: string[] = [];
    const storage = throughProxy();
    const started = Date.now();
    try {
      const outcome = await runPrefetcher({
        storage,
        keys,
        trust,
        dataDir,
        directory,
        systemIdentifier,
        depth: 5,
        maxBytes: 1 << 30,
        idleMs: 0,
        log: (line) => logged.push(line),
      });
      assert.equal(outcome.failed, 2, logged.join('\n'));
    } finally {
      await storage.close();
    }
    const { segments, temporary } = spoolContents(directory);
    assert.deepEqual(segments, [slowed, late, plain].sort(), logged.join('\n'));
    assert.deepEqual(temporary, [], 'no partial file left behind');
    for (const name of segments) assert.equal(statSync(join(directory, name)).size, WAL_SEGMENT_BYTES);
    assert.match(
      logged.join('\n'),
      new RegExp(`prefetch of ${reset} failed.*PMS_ERR_REPO_UNAVAILABLE|prefetch of ${reset} failed.*(reset|ECONNRESET|aborted)`, 'i'),
    );
    assert.match(logged.join('\n'), new RegExp(`prefetch of ${stalled} failed.*(no byte|ETIMEDOUT|timed? ?out)`, 'i'));
    console.log(`# prefetcher through a reset, a stall, a SlowDown and 2 s latency: ${Date.now() - started} ms`);

    // Recovery's own call for the cut segment, prefetch on: exit 200 (never 0, never 1), nothing at %p or in the spool.
    const fetched = await timed(() =>
      runCli('pms-backup', ['wal-fetch', reset, 'pg_wal/RECOVERYXLOG'], { ...serverEnv, BACKUP_WAL_PREFETCH: '4' }, { cwd: dataDir }),
    );
    assert.equal(fetched.code, 200, fetched.stderr);
    assert.match(fetched.stderr, /PMS_ERR_REPO_UNAVAILABLE/);
    assert.ok(fetched.ms < BOUND_MS);
    assert.ok(!existsSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')));
    // It started a background prefetcher; stop it the way recovery_end_command does, then look.
    const cleaned = await runCli('pms-backup', ['wal-prefetch', 'clean'], serverEnv, { cwd: dataDir });
    assert.equal(cleaned.code, 0, cleaned.stderr);
    assert.ok(!existsSync(join(dataDir, SPOOL_ROOT)), 'the spool is removed');
  });

  test('a burst of 3 SlowDowns on a segment is ridden out with 3 attempts allowed, waiting at least 3.5 s; SlowDown without end fails bounded', async () => {
    const name = walAfterBackup[6]!;
    const dataDir = recoveringDataDir('burst');
    const env = { ...serverEnv, BACKUP_WAL_PREFETCH: '0', BACKUP_S3_REQUEST_TIMEOUT_SECONDS: '10' };
    const fetch = () => timed(() => runCli('pms-backup', ['wal-fetch', name, 'pg_wal/RECOVERYXLOG'], env, { cwd: dataDir }));
    const burst = proxy.add({ method: 'GET', key: objectKey(name), times: 3, fault: { kind: 'error', status: 503 } });
    const ridden = await fetch();
    assert.equal(ridden.code, 0, ridden.stderr);
    assert.equal(burst.fired, 3);
    assert.equal(statSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')).size, WAL_SEGMENT_BYTES);
    // Waits of 0.5-1, 1-2 and 2-4 s: at least 3.5 s, and within the 10 s budget plus the command.
    assert.ok(ridden.ms >= 3500, `backoff really waited: ${ridden.ms} ms`);
    assert.ok(ridden.ms < 10_000 + 15_000, `${ridden.ms} ms`);
    const gets = proxy.requests.filter((r) => r.method === 'GET').map((r) => r.at);
    console.log(
      `# 3 SlowDowns ridden out: ${ridden.ms} ms; gaps ${gets
        .slice(1)
        .map((at, i) => at - gets[i]!)
        .join(', ')} ms`,
    );

    proxy.reset();
    rmSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG'));
    proxy.add({ method: 'GET', key: objectKey(name), fault: { kind: 'error', status: 503 } });
    const refused = await fetch();
    assert.equal(refused.code, 200, refused.stderr);
    assert.match(refused.stderr, /PMS_ERR_REPO_UNAVAILABLE.*SlowDown|SlowDown.*PMS_ERR_REPO_UNAVAILABLE|PMS_ERR_REPO_UNAVAILABLE/s);
    assert.deepEqual(readdirSync(join(dataDir, 'pg_wal')), [], 'neither %p nor a temporary file');
    // The throttle budget is the request timeout (10 s): the waits stop before it, the command soon after.
    assert.ok(refused.ms >= 3500 && refused.ms < 10_000 + 15_000, `${refused.ms} ms`);
    console.log(
      `# SlowDown without end: exit 200 after ${refused.ms} ms (${proxy.requests.filter((r) => r.method === 'GET').length} GETs)`,
    );
  });
});

describe('object-store faults: recovery of a real PostgreSQL through restore --pitr', () => {
  test('SlowDown, a body cut mid-way, a stall and 2 s latency on four segments: recovery completes with the same rows', async () => {
    const rules = [
      proxy.add({ method: 'GET', key: objectKey(walAfterBackup[1]!), nth: 1, fault: { kind: 'error', status: 503 } }),
      proxy.add({ method: 'GET', key: objectKey(walAfterBackup[2]!), nth: 1, fault: { kind: 'reset-response', afterBytes: CUT_AFTER } }),
      proxy.add({ method: 'GET', key: objectKey(walAfterBackup[3]!), nth: 1, fault: { kind: 'stall', afterBytes: CUT_AFTER } }),
      proxy.add({ method: 'GET', key: objectKey(walAfterBackup[4]!), fault: { kind: 'latency', ms: 2000 } }),
    ];
    const started = Date.now();
    const cluster = await restoreAndStart();
    await waitFor('recovery to finish and promote', async () =>
      (await cluster.psql('SELECT pg_is_in_recovery()')) === 'f' ? true : undefined,
    );
    const ms = Date.now() - started;
    assert.equal(await rows(cluster), expectedRows);
    assert.deepEqual(
      rules.map((rule) => rule.fired > 0),
      [true, true, true, true],
      'every fault was met on the way',
    );
    await waitFor('the spool removed', async () => (existsSync(join(cluster.dataDir, SPOOL_ROOT)) ? undefined : true));
    console.log(`# recovery through SlowDown, reset, stall and latency: ${ms} ms`);
    await cluster.destroy();
  });

  test('a segment cut mid-body on every attempt: recovery stops within the bound with the reason logged, claims nothing, and completes once the store is well', async () => {
    const broken = walAfterBackup[5]!;
    proxy.add({ method: 'GET', key: objectKey(broken), fault: { kind: 'reset-response', afterBytes: CUT_AFTER } });
    const started = Date.now();
    // pg_ctl start returns once the server is consistent (hot standby), before it reaches the broken segment.
    const cluster = await restoreAndStart();
    const dataDir = cluster.dataDir;
    await waitFor('the server to stop', async () => (existsSync(join(dataDir, 'postmaster.pid')) ? undefined : true), BOUND_MS);
    const ms = Date.now() - started;
    assert.ok(ms < BOUND_MS, `${ms} ms`);
    const log = serverLog(cluster);
    assert.match(log, new RegExp(`wal-fetch ${broken}: error PMS_ERR_REPO_UNAVAILABLE`), log);
    assert.match(log, /exit code 200/, log);
    assert.doesNotMatch(log, /database system is ready to accept read-write connections|selected new timeline/, 'never promoted');
    assert.ok(
      existsSync(join(dataDir, 'standby.signal')),
      'the data directory still says it is recovering (a standby restore --pitr prepared)',
    );
    const control = readFileSync(join(dataDir, 'global', 'pg_control'));
    assert.notEqual(control.readUInt32LE(16), 6, 'pg_control is not "in production"');
    // The prefetcher notices its server is gone and stops, aborting the fetches it had in flight
    // (CI once saw two of its claims still there, the fetches they guarded running on).
    await waitFor('the prefetcher to exit', async () => (livePrefetcher(dataDir) === undefined ? true : undefined), 15_000);
    const prefetcherLog = readFileSync(join(dataDir, SPOOL_ROOT, LOG_FILE), 'utf8');
    assert.match(prefetcherLog, /prefetcher exits \(server-stopped\)/, prefetcherLog);
    const { segments, temporary } = spoolContents(spoolDirectory(dataDir, systemIdentifier, false));
    assert.ok(!segments.includes(broken), `the cut segment is not spooled: ${segments.join(', ')}`);
    assert.deepEqual(temporary, []);
    assert.ok(!existsSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')), 'no partial segment where PostgreSQL reads');
    console.log(`# recovery stopped at ${broken} after ${ms} ms`);

    proxy.reset();
    await cluster.start();
    await waitFor('recovery to finish and promote', async () =>
      (await cluster.psql('SELECT pg_is_in_recovery()')) === 'f' ? true : undefined,
    );
    assert.equal(await rows(cluster), expectedRows);
    await waitFor('the spool removed', async () => (existsSync(join(cluster.dataDir, SPOOL_ROOT)) ? undefined : true));
  });
});
