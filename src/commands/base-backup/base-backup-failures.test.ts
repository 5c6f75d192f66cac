import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { BaseManifest } from '../../repository/manifest.js';
import { loadBackupConfig } from '../../config/config.js';
import { isPmsError } from '../../errors/catalogue.js';
import { startBaseBackupStream } from '../../postgres/replication-base-backup.js';
import { startThrowawayCluster, type ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { archiveCommand } from '../restore/pitr/recovery-settings.js';
import { type ArchiveFixture, PG_UID, createArchiveFixture } from '../../testing/archive-fixture.js';
import { waitUntilMidUpload } from '../../testing/mid-upload.js';
import { binPath, runCli } from '../../testing/run-cli.js';

let fixture: ArchiveFixture;
let cluster: ThrowawayCluster;
let work: string;
let repoRoot: string;
let env: Record<string, string>;

before(async () => {
  fixture = await createArchiveFixture('base-failures');
  ({ work, repoRoot } = fixture);
  env = { ...fixture.env };
  cluster = await startThrowawayCluster({
    settings: { archive_mode: 'on', wal_level: 'replica', archive_command: archiveCommand() },
    serverEnv: env,
  });
  await cluster.psql('CREATE DATABASE patient_telemetry');
  // md5 text compresses about 2:1, so the backup streams for a while even compressed.
  await cluster.psql(
    'CREATE TABLE filler AS SELECT g AS id, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 400000) g',
    'patient_telemetry',
  );
  await cluster.psql('CREATE ROLE no_replication LOGIN');
});

after(async () => {
  await cluster?.destroy();
  fixture?.remove();
});

const cliEnv = (): Record<string, string> => ({ ...cluster.postgresEnv, ...env });

function startBaseBackup(): { child: ReturnType<typeof spawn>; exited: Promise<number | null>; stderr: () => string } {
  const child = spawn(process.execPath, [binPath('pms-backup'), 'base-backup'], {
    env: { PATH: process.env['PATH'], ...cliEnv() },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return { child, exited: new Promise((resolve) => child.once('close', resolve)), stderr: () => stderr };
}

/** Every object file under backups/ (temporary upload files included). */
function backupFiles(): string[] {
  const dir = join(repoRoot, 'backups');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name);
}

async function completeBaseBackups(): Promise<number> {
  const list = JSON.parse((await runCli('pms-backup', ['list', '--json'], cliEnv())).stdout) as Array<{ status: string; kind?: string }>;
  return list.filter((r) => r.status === 'complete' && r.kind === 'base').length;
}

describe('base-backup failures', () => {
  test('a role without REPLICATION gets an error naming the attribute and the fix, and nothing is stored', async () => {
    const result = await runCli('pms-backup', ['base-backup'], { ...cliEnv(), POSTGRES_USER: 'no_replication' });
    assert.notEqual(result.code, 0);
    assert.match(
      result.stderr,
      /PMS_ERR_DB_UNAVAILABLE: .*refused a replication connection for user no_replication.*REPLICATION attribute/,
    );
    assert.deepEqual(backupFiles(), []);
  });

  test('SIGTERM mid-stream stops base-backup cleanly (PMS_ERR_ABORTED, no object left) and the server accepts the next backup at once', async () => {
    const run = startBaseBackup();
    assert.ok(await waitUntilMidUpload(join(repoRoot, 'backups'), run.child, 32 * 1024), 'the backup was caught mid-stream');
    run.child.kill('SIGTERM');
    assert.equal(await run.exited, 1, run.stderr());
    assert.match(run.stderr(), /PMS_ERR_ABORTED: base-backup was interrupted by SIGTERM/);
    assert.deepEqual(backupFiles(), [], 'the partial upload was removed');
    assert.equal(await completeBaseBackups(), 0);
    const retry = await runCli('pms-backup', ['base-backup'], cliEnv());
    assert.equal(retry.code, 0, retry.stderr);
    assert.equal(await completeBaseBackups(), 1);
  });

  test('the server stopping mid-stream fails base-backup with an error naming the server, and leaves no complete backup', async () => {
    // Data zstd cannot shrink much: the stream must outlast what the signing and encryption
    // stages hold in flight (a few MiB), or the server has sent everything before the stop.
    await cluster.psql(
      'CREATE TABLE noise AS SELECT md5(random()::text) || md5(random()::text) || md5(random()::text) AS a FROM generate_series(1, 600000)',
      'patient_telemetry',
    );
    await cluster.psql('CHECKPOINT');
    const before = await completeBaseBackups();
    const filesBefore = backupFiles().sort();
    const run = startBaseBackup();
    assert.ok(await waitUntilMidUpload(join(repoRoot, 'backups'), run.child, 32 * 1024), 'the backup was caught mid-stream');
    await cluster.stop('immediate');
    const code = await run.exited;
    await cluster.start();
    assert.notEqual(code, 0);
    assert.match(
      run.stderr(),
      new RegExp(
        `PMS_ERR_DB_UNAVAILABLE: the connection to ${cluster.postgresEnv['POSTGRES_HOST']}:${cluster.port} broke during the base backup`,
      ),
    );
    assert.equal(await completeBaseBackups(), before, 'nothing new is complete');
    assert.deepEqual(backupFiles().sort(), filesBefore, 'the partial upload was removed');
    await cluster.psql('DROP TABLE noise', 'patient_telemetry');
  });

  test('a tampered backup_manifest object is refused by restore --pitr (PMS_ERR_INTEGRITY, naming the object)', async () => {
    const result = await runCli('pms-backup', ['base-backup', '--json'], cliEnv());
    assert.equal(result.code, 0, result.stderr);
    const manifest = JSON.parse(result.stdout) as BaseManifest;
    const object = manifest.objects[1]!;
    assert.match(object.key, /\.backup_manifest\.gpg$/);
    const path = join(repoRoot, object.key);
    const bytes = readFileSync(path);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 100) ^ 0xff, bytes.length - 100);
    writeFileSync(path, bytes);
    const target = join(work, 'tampered-restore');
    const restore = await runCli(
      'pms-backup',
      ['restore', '--pitr', '--target-time', 'latest', '--pgdata', target, '--base', manifest.id],
      cliEnv(),
    );
    assert.notEqual(restore.code, 0);
    assert.match(restore.stderr, /PMS_ERR_(INTEGRITY|KEY)/);
    assert.match(restore.stderr, new RegExp(`${manifest.id}|backup_manifest`));
  });

  test('an abort while the replication connection is being made still ends the backup (no hang), and the server takes the next one', async () => {
    const config = loadBackupConfig({ ...cliEnv() }, {}).postgres;
    const controller = new AbortController();
    const starting = startBaseBackupStream(config, { label: 'pms-test-abort-early', level: 1, workers: 1, signal: controller.signal });
    controller.abort(new Error('test abort'));
    const outcome = await starting.then(
      (stream) =>
        stream.done.then(
          () => 'completed',
          (error: unknown) => error,
        ),
      (error: unknown) => error,
    );
    assert.ok(isPmsError(outcome, 'PMS_ERR_ABORTED'), `expected PMS_ERR_ABORTED, got ${String(outcome)}`);
    // A consumer that destroys the archive mid-stream ends the command too.
    const stream = await startBaseBackupStream(config, { label: 'pms-test-consumer-gone', level: 1, workers: 1 });
    await new Promise<void>((resolve) => stream.archive.once('data', () => resolve()));
    stream.archive.destroy();
    await assert.rejects(stream.done, (error: unknown) => isPmsError(error, 'PMS_ERR_ABORTED'));
    const next = await startBaseBackupStream(config, { label: 'pms-test-after', level: 1, workers: 1 });
    stream.archive.resume();
    next.archive.resume();
    const result = await next.done;
    assert.ok(result.plainBytes > 0 && result.backupManifest.length > 0);
  });

  test('a PITR restore onto a full disk names tar and the full disk, not a corrupt backup, and leaves no data directory', async (t) => {
    const result = await runCli('pms-backup', ['base-backup', '--json'], cliEnv());
    assert.equal(result.code, 0, result.stderr);
    const manifest = JSON.parse(result.stdout) as BaseManifest;
    const small = join(work, 'small-disk');
    mkdirSync(small);
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0755', 'tmpfs', small], { encoding: 'utf8' });
    assert.equal(mounted.status, 0, `mount an 8 MiB tmpfs (needs root): ${mounted.stderr}`);
    t.after(() => {
      spawnSync('umount', [small]);
    });
    const target = join(small, 'pgdata');
    const restore = await runCli(
      'pms-backup',
      ['restore', '--pitr', '--target-time', 'latest', '--pgdata', target, '--base', manifest.id],
      cliEnv(),
    );
    assert.notEqual(restore.code, 0);
    assert.match(restore.stderr, /PMS_ERR_TOOL_FAILED: tar .*(No space left on device|Cannot write)/);
    t.diagnostic(restore.stderr.trim().split('\n').pop() ?? '');
    assert.doesNotMatch(restore.stderr, /PMS_ERR_INTEGRITY|corrupt/);
    assert.ok(!existsSync(target) || readdirSync(target).length === 0, 'the partial data directory was removed');
  });

  test('a cluster with a tablespace outside the data directory is refused with PMS_ERR_CONFIG naming it, and nothing is stored', async (t) => {
    const location = join(work, 'tablespace');
    mkdirSync(location, { mode: 0o700 });
    chownSync(location, PG_UID, -1);
    await cluster.psql(`CREATE TABLESPACE outside LOCATION '${location}'`);
    t.after(() => cluster.psql('DROP TABLESPACE outside'));
    const filesBefore = backupFiles().sort();
    const result = await runCli('pms-backup', ['base-backup'], cliEnv());
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /PMS_ERR_CONFIG: the cluster at .* has 1 tablespace\(s\) outside the data directory/);
    assert.deepEqual(backupFiles().sort(), filesBefore, 'no object was left behind');
  });
});
