import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { archiveCommand } from '../../commands/restore/pitr/recovery-settings.js';
import { startThrowawayCluster, type ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { WAL_PREFIX, walFileOfKey } from '../../repository/wal-layout.js';
import { type ArchiveFixture, createArchiveFixture } from '../../testing/archive-fixture.js';
import { type CliResult, runCli } from '../../testing/run-cli.js';
import { type S3FaultProxy, startS3FaultProxy } from '../../testing/s3-fault-proxy.js';
import { type S3rverHarness, S3RVER_ACCESS_KEY_ID, S3RVER_SECRET_ACCESS_KEY, startS3rver } from '../../testing/s3rver-harness.js';
import { S3Storage } from './s3-storage.js';

/**
 * Every command that talks to S3, run as a real process against real PostgreSQL, through the
 * fault proxy in front of s3rver. Each fault either is absorbed by the client's retries or
 * fails the command with PMS_ERR_REPO_UNAVAILABLE within the bound the settings below give
 * (3 attempts of at most 2 s of silence each; a SlowDown is waited out for at most the same 2 s,
 * src/storage/s3/s3-retry.ts), and never leaves anything that looks complete.
 */
const BUCKET = 'pms-faults';
const TUNING = {
  BACKUP_S3_MAX_ATTEMPTS: '3',
  BACKUP_S3_REQUEST_TIMEOUT_SECONDS: '2',
  BACKUP_S3_CONNECT_TIMEOUT_SECONDS: '2',
  BACKUP_S3_PART_SIZE_MIB: '5',
};
/**
 * The longest a bounded failure may take here: 3 attempts x 2 s of silence plus backoff is about
 * 7 s of waiting; the rest is the command itself (a base backup takes 15 s on a loaded 2-core CI
 * machine). A hang would be minutes: the defaults are 3 x 120 s, and without a watch, forever.
 */
const BOUND_MS = 60_000;

let fixture: ArchiveFixture;
let s3: S3rverHarness;
let proxy: S3FaultProxy;
let cluster: ThrowawayCluster;
let env: Record<string, string>;
let walEnv: Record<string, string>;
let segmentsDir: string;
const segments: string[] = [];
/** A segment archived without faults, for the wal-fetch tests. */
let fetchable: string;

function direct(prefix: string): S3Storage {
  const repository = s3.repository(prefix);
  if (repository.kind !== 's3') throw new Error('s3rver gives an s3 repository');
  return new S3Storage(repository.s3);
}

async function keysUnder(prefix: string, under: string): Promise<string[]> {
  const storage = direct(prefix);
  try {
    const keys: string[] = [];
    for await (const object of storage.list(under)) keys.push(object.key);
    return keys.sort();
  } finally {
    await storage.close();
  }
}

const manifests = async (prefix = 'main'): Promise<string[]> =>
  (await keysUnder(prefix, 'backups/')).filter((k) => k.endsWith('/manifest.json'));

async function listed(repositoryEnv: Record<string, string>): Promise<Array<{ id: string; status: string; kind?: string }>> {
  const result = await runCli('pms-backup', ['list', '--json'], repositoryEnv);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as Array<{ id: string; status: string; kind?: string }>;
}

async function timed(run: () => Promise<CliResult>): Promise<CliResult & { ms: number }> {
  const started = Date.now();
  const result = await run();
  return { ...result, ms: Date.now() - started };
}

/** A bounded failure naming the object store; the time goes into the test's diagnostic output. */
function assertStoreFailure(result: CliResult & { ms: number }, what: string): void {
  assert.notEqual(result.code, 0, `${what} must fail: ${result.stdout}`);
  assert.match(result.stderr, /PMS_ERR_REPO_UNAVAILABLE/, result.stderr);
  assert.match(result.stderr, new RegExp(`bucket ${BUCKET} at`), 'the error names the bucket and endpoint');
  assert.ok(result.ms < BOUND_MS, `${what} took ${result.ms} ms`);
  console.log(`# ${what}: exit ${result.code} after ${result.ms} ms`);
}

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

async function archivedSegment(name: string): Promise<boolean> {
  const keys = await keysUnder('walpush', WAL_PREFIX);
  return keys.some((k) => walFileOfKey(k)?.name === name);
}

const walPush = (name: string) => timed(() => runCli('pms-backup', ['wal-push', join(segmentsDir, 'pg_wal', name)], walEnv));

function walFetch(name: string, destination: string) {
  return timed(() => runCli('pms-backup', ['wal-fetch', name, destination], walEnv, { cwd: cluster.dataDir }));
}

before(async () => {
  [fixture, s3] = await Promise.all([createArchiveFixture('s3-faults'), startS3rver({ bucket: BUCKET })]);
  proxy = await startS3FaultProxy(s3.endpoint);
  // The server archives its own WAL straight to s3rver: base-backup waits for it, and faults
  // aimed at the commands under test must not hit it.
  const serverEnv = { ...fixture.env, ...s3.env('main'), ...TUNING };
  cluster = await startThrowawayCluster({
    settings: { archive_mode: 'on', wal_level: 'replica', archive_command: archiveCommand() },
    serverEnv,
  });
  await cluster.psql('CREATE DATABASE patient_telemetry');
  // About 7 MiB of incompressible bytes: dumps and base backups span two 5 MiB parts.
  await cluster.psql(
    `CREATE TABLE blob AS SELECT g AS id, decode(string_agg(md5(g || '-' || i || random()::text), ''), 'hex') AS pad
       FROM generate_series(1, 7000) g, generate_series(1, 64) i GROUP BY g`,
    'patient_telemetry',
  );
  env = { ...cluster.postgresEnv, ...serverEnv, POSTGRES_DB: 'patient_telemetry', S3_ENDPOINT: proxy.endpoint };
  walEnv = { ...env, BACKUP_REPOSITORY: `s3://${BUCKET}/walpush` };
  // Complete segments of this cluster, copied out so wal-push can be run on them at will.
  segmentsDir = join(fixture.work, 'segments');
  mkdirSync(join(segmentsDir, 'pg_wal'), { recursive: true });
  for (let i = 0; i < 6; i += 1) {
    // pg_switch_wal() returns the end of the segment it completed: that segment's name.
    const name = await cluster.psql(
      `INSERT INTO blob SELECT -${i + 1}, 'x'::bytea; SELECT pg_walfile_name(pg_switch_wal())`,
      'patient_telemetry',
    );
    copyFileSync(join(cluster.dataDir, 'pg_wal', name), join(segmentsDir, 'pg_wal', name));
    segments.push(name);
  }
  assert.equal(new Set(segments).size, segments.length, 'six different segments');
  fetchable = segments.shift()!;
  const pushed = await walPush(fetchable);
  assert.equal(pushed.code, 0, pushed.stderr);
});

after(async () => {
  await cluster?.destroy();
  await proxy?.close();
  await s3?.destroy();
  fixture?.remove();
});

beforeEach(() => proxy.reset());

describe('object-store faults: create (logical backup, multipart)', () => {
  test('503 SlowDown on part 2 and 500 on the manifest, once each: create succeeds through retries', async () => {
    proxy.add({ method: 'PUT', key: /\.dump\.zst\.gpg$/, partNumber: 2, nth: 1, fault: { kind: 'error', status: 503 } });
    proxy.add({ method: 'PUT', key: /manifest\.json$/, nth: 1, fault: { kind: 'error', status: 500 } });
    const created = await timed(() => runCli('pms-backup', ['create', '--json'], env));
    assert.equal(created.code, 0, created.stderr);
    const id = (JSON.parse(created.stdout) as { id: string }).id;
    assert.ok(
      proxy.requests.some((r) => r.partNumber === 2 && r.fault === 'error'),
      'the dump was multipart and part 2 was refused once',
    );
    assert.equal((await listed(env)).find((r) => r.id === id)?.status, 'complete');
    console.log(`# create through one SlowDown and one 500: ${created.ms} ms`);
  });

  test('every attempt at part 2 reset mid-body: create fails bounded, no manifest, the upload is aborted', async () => {
    const before = await manifests();
    proxy.add({ method: 'PUT', key: /\.dump\.zst\.gpg$/, partNumber: 2, fault: { kind: 'reset-request', afterBytes: 256 * 1024 } });
    const created = await timed(() => runCli('pms-backup', ['create'], env));
    assertStoreFailure(created, 'create, part 2 reset on every attempt');
    assert.deepEqual(await manifests(), before, 'no new manifest');
    assert.ok((await listed(env)).every((r) => r.status !== 'complete' || before.some((k) => k.includes(r.id))));
    // s3rver cannot abort an upload (it answers 405), so what is checked is that we asked.
    assert.ok(
      proxy.requests.some((r) => r.method === 'DELETE' && r.uploadId !== undefined && /\.dump\.zst\.gpg$/.test(r.key)),
      'the multipart upload was aborted',
    );
  });
});

describe('object-store faults: base-backup (multipart)', () => {
  test('part 2 stalls on every attempt: base-backup fails bounded, no manifest, list shows nothing complete', async () => {
    const before = await manifests();
    proxy.add({ method: 'PUT', key: /\.tar\.zst\.gpg$/, partNumber: 2, fault: { kind: 'stall' } });
    const backup = await timed(() => runCli('pms-backup', ['base-backup'], env));
    assertStoreFailure(backup, 'base-backup, part 2 stalled on every attempt');
    assert.deepEqual(await manifests(), before, 'no new manifest');
    const complete = (await listed(env)).filter((r) => r.status === 'complete' && r.kind === 'base');
    assert.equal(complete.length, 0, 'no base backup looks complete');
  });

  test('2 s latency on part 1 and 503 on the multipart completion once: base-backup succeeds', async () => {
    proxy.add({ method: 'PUT', key: /\.tar\.zst\.gpg$/, partNumber: 1, nth: 1, fault: { kind: 'latency', ms: 2000 } });
    proxy.add({ method: 'POST', key: /\.tar\.zst\.gpg$/, nth: 2, fault: { kind: 'error', status: 503 } });
    const backup = await timed(() => runCli('pms-backup', ['base-backup', '--json'], env));
    assert.equal(backup.code, 0, backup.stderr);
    assert.ok(
      proxy.requests.some((r) => r.method === 'POST' && r.fault === 'error'),
      'the completion was refused once',
    );
    const complete = (await listed(env)).filter((r) => r.status === 'complete' && r.kind === 'base');
    assert.equal(complete.length, 1);
    console.log(`# base-backup through 2 s latency and one SlowDown: ${backup.ms} ms`);
  });
});

describe('object-store faults: wal-push', () => {
  test('500 on every PUT of the segment: wal-push fails bounded and the segment is not in the bucket', async () => {
    const name = segments[0]!;
    proxy.add({ method: 'PUT', key: new RegExp(`${name}\\.zst\\.gpg$`), fault: { kind: 'error', status: 500 } });
    const pushed = await walPush(name);
    assertStoreFailure(pushed, 'wal-push, 500 on every attempt');
    assert.equal(await archivedSegment(name), false);
  });

  test('the PUT stalls on every attempt: wal-push fails within the timeouts, nothing stored', async () => {
    const name = segments[1]!;
    proxy.add({ method: 'PUT', key: new RegExp(`${name}\\.zst\\.gpg$`), fault: { kind: 'stall' } });
    const pushed = await walPush(name);
    assertStoreFailure(pushed, 'wal-push, PUT stalled on every attempt');
    assert.ok(pushed.ms >= 3 * 2000, 'three attempts each waited out the 2 s timeout');
    assert.equal(await archivedSegment(name), false);
  });

  test('the request reset mid-body once, then SlowDown once: wal-push exits 0 and the stored segment is intact', async () => {
    const name = segments[2]!;
    const key = new RegExp(`${name}\\.zst\\.gpg$`);
    proxy.add({ method: 'PUT', key, nth: 1, fault: { kind: 'reset-request', afterBytes: 100_000 } });
    proxy.add({ method: 'PUT', key, nth: 2, fault: { kind: 'error', status: 503 } });
    const pushed = await walPush(name);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.equal(await archivedSegment(name), true);
    const out = join(fixture.work, `check-${name}`);
    const fetched = await walFetch(name, out);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.equal(sha256(out), sha256(join(segmentsDir, 'pg_wal', name)), 'what was stored is the segment');
  });

  test('the response is cut after the object was stored: the retry finds it and wal-push exits 0 with the segment intact', async () => {
    const name = segments[3]!;
    proxy.add({ method: 'PUT', key: new RegExp(`${name}\\.zst\\.gpg$`), nth: 1, fault: { kind: 'reset-response', afterBytes: 0 } });
    const pushed = await walPush(name);
    assert.equal(pushed.code, 0, pushed.stderr);
    const out = join(fixture.work, `check-${name}`);
    const fetched = await walFetch(name, out);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.equal(sha256(out), sha256(join(segmentsDir, 'pg_wal', name)));
  });
});

describe('object-store faults: wal-fetch', () => {
  const destinationDir = (): string => {
    const dir = join(fixture.work, 'fetch');
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  const key = (): RegExp => new RegExp(`${fetchable}\\.zst\\.gpg$`);

  test('the body reset after 64 KiB: wal-fetch exits 200 (not 0, not 1), %p absent, no temporary file left', async () => {
    proxy.add({ method: 'GET', key: key(), fault: { kind: 'reset-response', afterBytes: 64 * 1024 } });
    const dir = destinationDir();
    const fetched = await walFetch(fetchable, join(dir, 'RECOVERYXLOG'));
    assert.equal(fetched.code, 200, fetched.stderr);
    assertStoreFailure(fetched, 'wal-fetch, body reset after 64 KiB');
    assert.deepEqual(readdirSync(dir), [], 'neither %p nor a temporary file');
  });

  test('the body stalls after 64 KiB: wal-fetch exits 200 after the timeout, %p absent', async () => {
    proxy.add({ method: 'GET', key: key(), fault: { kind: 'stall', afterBytes: 64 * 1024 } });
    const dir = destinationDir();
    const fetched = await walFetch(fetchable, join(dir, 'RECOVERYXLOG'));
    assert.equal(fetched.code, 200, fetched.stderr);
    assertStoreFailure(fetched, 'wal-fetch, body stalled after 64 KiB');
    assert.deepEqual(readdirSync(dir), []);
  });

  test('503 SlowDown on the first GET and 2 s latency on the HEAD: wal-fetch exits 0 with the exact segment', async () => {
    proxy.add({ method: 'GET', key: key(), nth: 1, fault: { kind: 'error', status: 503 } });
    proxy.add({ method: 'HEAD', key: key(), nth: 1, fault: { kind: 'latency', ms: 2000 } });
    const destination = join(destinationDir(), 'RECOVERYXLOG');
    const fetched = await walFetch(fetchable, destination);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.equal(sha256(destination), sha256(join(segmentsDir, 'pg_wal', fetchable)));
  });
});

describe('object-store faults: restore', () => {
  let id: string;
  const databases = () => cluster.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database");

  before(async () => {
    const created = await runCli('pms-backup', ['create', '--json'], env);
    assert.equal(created.code, 0, created.stderr);
    id = (JSON.parse(created.stdout) as { id: string }).id;
  });

  test('the dump download reset mid-body: restore fails bounded and leaves no database behind', async () => {
    const before = await databases();
    proxy.add({ method: 'GET', key: /\.dump\.zst\.gpg$/, fault: { kind: 'reset-response', afterBytes: 1024 * 1024 } });
    const restored = await timed(() => runCli('pms-backup', ['restore', id, '--target-db', 'restored_reset'], env));
    assertStoreFailure(restored, 'restore, dump body reset after 1 MiB');
    assert.equal(await databases(), before);
  });

  test('503 SlowDown on the first GET of the dump: restore succeeds with the same data', async () => {
    proxy.add({ method: 'GET', key: /\.dump\.zst\.gpg$/, nth: 1, fault: { kind: 'error', status: 503 } });
    const restored = await timed(() => runCli('pms-backup', ['restore', id, '--target-db', 'restored_ok'], env));
    assert.equal(restored.code, 0, restored.stderr);
    const digest = "SELECT md5(string_agg(md5(pad), '' ORDER BY id)) FROM blob";
    assert.equal(await cluster.psql(digest, 'restored_ok'), await cluster.psql(digest, 'patient_telemetry'));
  });
});

describe('object-store faults: copy to the DR repository', () => {
  const drUrl = `s3://${BUCKET}/dr`;
  const drEnv = (): Record<string, string> => ({
    ...env,
    BACKUP_DR_AWS_REGION: 'us-east-1',
    BACKUP_DR_AWS_ACCESS_KEY_ID: S3RVER_ACCESS_KEY_ID,
    BACKUP_DR_AWS_SECRET_ACCESS_KEY: S3RVER_SECRET_ACCESS_KEY,
    BACKUP_DR_S3_ENDPOINT: proxy.endpoint,
    BACKUP_DR_S3_FORCE_PATH_STYLE: 'true',
  });
  const drList = () => listed({ ...env, BACKUP_REPOSITORY: drUrl, S3_ENDPOINT: s3.endpoint });

  test('every attempt at a DR part reset: copy fails bounded and nothing in DR looks complete', async () => {
    proxy.add({ method: 'PUT', key: /^dr\/.*\.gpg$/, partNumber: 2, fault: { kind: 'reset-request', afterBytes: 64 * 1024 } });
    const copied = await timed(() => runCli('pms-backup', ['copy', '--to', drUrl], drEnv()));
    assertStoreFailure(copied, 'copy, DR part 2 reset on every attempt');
    assert.equal((await drList()).filter((r) => r.status === 'complete').length, 0);
    assert.deepEqual(await manifests('dr'), []);
  });

  test('503 SlowDown on a DR part once: the next copy completes every backup', async () => {
    proxy.add({ method: 'PUT', key: /^dr\/.*\.gpg$/, partNumber: 1, nth: 1, fault: { kind: 'error', status: 503 } });
    const copied = await timed(() => runCli('pms-backup', ['copy', '--to', drUrl, '--json'], drEnv()));
    assert.equal(copied.code, 0, copied.stderr);
    const primary = (await listed(env)).filter((r) => r.status === 'complete').map((r) => r.id);
    const dr = (await drList()).filter((r) => r.status === 'complete').map((r) => r.id);
    assert.deepEqual(dr.sort(), primary.sort());
    console.log(`# copy through one SlowDown: ${copied.ms} ms`);
  });
});
