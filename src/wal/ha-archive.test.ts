import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { type DecryptionKeys, loadDecryptionKeys } from '../crypto/keys.js';
import { type TrustPolicy, loadTrustedSigners } from '../crypto/signing.js';
import { restorePitr } from '../commands/restore/pitr/restore-pitr.js';
import { archiveCommand } from '../commands/restore/pitr/recovery-settings.js';
import { startThrowawayCluster, type ThrowawayCluster } from '../postgres/throwaway-cluster.js';
import { listBackups } from '../repository/backup-catalog.js';
import type { BaseManifest } from '../repository/manifest.js';
import { FsStorage } from '../storage/fs/fs-storage.js';
import { type ArchiveFixture, createArchiveFixture } from '../testing/archive-fixture.js';
import { waitUntilMidUpload } from '../testing/mid-upload.js';
import { type PatroniCluster, type PatroniMember, startPatroniCluster } from '../testing/patroni-harness.js';
import { binPath, runCli } from '../testing/run-cli.js';
import { archivedWalNames, checkContinuity } from './timeline-continuity.js';

let fixture: ArchiveFixture;
let cluster: PatroniCluster;
let env: Record<string, string>;
let keys: DecryptionKeys;
let trust: TrustPolicy;
let base: BaseManifest;
const restored: ThrowawayCluster[] = [];

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, seconds = 90): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Forces the leader's current segment out and waits until its archiver reports it done. */
async function archiveCurrentWal(leader: PatroniMember): Promise<string> {
  const name = await cluster.psql(leader, 'SELECT pg_walfile_name(pg_current_wal_lsn()) FROM pg_switch_wal()');
  // 180 s: after a failed archive_command PostgreSQL's archiver waits 60 s before it tries again,
  // and CI once timed out here at 90 s: most likely the file:// sidecar race of docs/ha.md (two
  // members pushing one segment at once), which leaves every member failing on that segment.
  try {
    await waitFor(
      `${name} archived`,
      async () => ((await cluster.psql(leader, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")) >= name ? true : undefined),
      180,
    );
  } catch (error) {
    // Why the archiver is stuck, from the server's own log (a run once timed out here unexplained).
    throw new Error(`${(error as Error).message}\n${await cluster.describeArchiver(leader)}`);
  }
  return name;
}

async function insertRows(leader: PatroniMember, from: number, to: number): Promise<void> {
  await cluster.psql(leader, `INSERT INTO t (id) SELECT g FROM generate_series(${from}, ${to}) g`);
}

/** A moment strictly between two commits. */
async function pointBetweenCommits(): Promise<Date> {
  await sleep(1100);
  const target = new Date();
  await sleep(1100);
  return target;
}

async function restoreAndCount(target: Date): Promise<number> {
  const storage = new FsStorage(fixture.repoRoot);
  const restoredCluster = await startThrowawayCluster({
    serverEnv: env,
    populate: async (dataDir) => {
      await restorePitr({ storage, keys, trust, target, dataDir });
    },
  });
  restored.push(restoredCluster);
  await waitFor('recovery to finish and promote', async () =>
    (await restoredCluster.psql('SELECT pg_is_in_recovery()')) === 'f' ? true : undefined,
  );
  return Number(await restoredCluster.psql('SELECT count(*) FROM t'));
}

before(async () => {
  fixture = await createArchiveFixture('ha-archive');
  env = { ...fixture.env };
  keys = await loadDecryptionKeys(fixture.key.privateKeyFile, fixture.key.passphraseFile);
  trust = { trusted: await loadTrustedSigners(fixture.key.publicKeyFile) };
  // Every member archives (archive_mode = always) into the one repository.
  cluster = await startPatroniCluster({ archiveCommand: archiveCommand(), serverEnv: env });
  const leader = await cluster.leader();
  await cluster.psql(leader, 'CREATE TABLE t (id int PRIMARY KEY)');
  // Enough data that a base backup is still uploading when it is paused.
  await cluster.psql(leader, "CREATE TABLE filler AS SELECT g, md5(g::text) || repeat('x', 200) AS pad FROM generate_series(1, 150000) g");
  await insertRows(leader, 1, 100);
  await archiveCurrentWal(leader);
});

after(async () => {
  for (const c of restored) await c.destroy().catch(() => undefined);
  await cluster?.stop();
  fixture?.remove();
});

describe('HA: base backup from a standby, archiving and PITR across a Patroni failover', () => {
  test('base-backup with BACKUP_FROM_STANDBY=require reads a standby, and waits for its stop segment via the primary', async () => {
    const result = await runCli('pms-backup', ['base-backup', '--json'], {
      ...cluster.postgresEnv,
      ...env,
      BACKUP_FROM_STANDBY: 'require',
    });
    assert.equal(result.code, 0, result.stderr);
    base = JSON.parse(result.stdout) as BaseManifest;
    assert.equal(base.timeline, 1);
    const verified = await runCli('pms-backup', ['verify', base.id, '--json'], env);
    assert.equal(verified.code, 0, verified.stderr);
  });

  test('BACKUP_FROM_STANDBY=require with only the primary listed is refused by name', async () => {
    const leader = await cluster.leader();
    const result = await runCli('pms-backup', ['base-backup'], { ...leader.postgresEnv, ...env, BACKUP_FROM_STANDBY: 'require' });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /BACKUP_FROM_STANDBY=require but .* has no standby/);
  });

  let beforeFailover: Date;
  let afterFailover: Date;

  test('the leader SIGKILLed while a base backup reads the sync standby: the promoted standby fails the backup with PMS_ERR_STANDBY_PROMOTED, nothing committed', async () => {
    const { leader, syncStandby } = await cluster.waitForHealthy();
    await insertRows(leader, 101, 200);
    beforeFailover = await pointBetweenCommits();
    const child = spawn(process.execPath, [binPath('pms-backup'), 'base-backup'], {
      env: { PATH: process.env['PATH'], ...syncStandby.postgresEnv, ...env, BACKUP_FROM_STANDBY: 'require' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    assert.ok(await waitUntilMidUpload(fixture.repoRoot, child, 64 * 1024), `base-backup never got mid-upload: ${stderr}`);
    // Held mid-copy while the cluster fails over under it; writes on the old leader continue meanwhile.
    child.kill('SIGSTOP');
    const killed = await cluster.killLeader();
    const { leader: promoted } = await cluster.waitForNewLeader(killed.member);
    assert.equal(promoted.name, syncStandby.name, 'Patroni promotes the sync standby');
    // Patroni's /primary answers 200 once it holds the leader key, which can be before the
    // standby's promotion has finished. The backup resumes only once the server it read is a
    // primary: otherwise it may see a standby still, finish, and commit (a consistent backup of
    // timeline 1, but not the case this test is about; seen once under load in CI).
    await waitFor('the promotion to finish', async () =>
      (await cluster.psql(promoted, 'SELECT pg_is_in_recovery()')) === 'f' ? true : undefined,
    );
    child.kill('SIGCONT');
    assert.equal(await exited, 6, stderr);
    assert.match(stderr, /PMS_ERR_STANDBY_PROMOTED/);
    const complete = (await listBackups(new FsStorage(fixture.repoRoot), trust)).filter((b) => b.status === 'complete');
    assert.deepEqual(
      complete.map((b) => b.id),
      [base.id],
      'the interrupted backup committed nothing',
    );
    await insertRows(promoted, 201, 300);
    afterFailover = await pointBetweenCommits();
    await insertRows(promoted, 301, 400);
    await archiveCurrentWal(promoted);
  });

  test('the archive holds timeline 1 up to the switch point, 00000002.history and timeline 2: no gap', async () => {
    const leader = await cluster.leader();
    const history = readFileSync(join(leader.dataDir, 'pg_wal', '00000002.history'), 'utf8');
    const switchLsn = /^1\s+([0-9A-F]+\/[0-9A-F]+)/m.exec(history)?.[1];
    assert.ok(switchLsn, history);
    const names = await archivedWalNames(new FsStorage(fixture.repoRoot));
    const report = checkContinuity(names, base.startWalSegment, new Map([[2, switchLsn]]));
    process.stdout.write(`# archive continuity: ${JSON.stringify(report)}\n`);
    assert.deepEqual(report.problems, []);
    assert.deepEqual(
      report.timelines.map((t) => t.timeline),
      [1, 2],
    );
  });

  test('monitor’s wal-gaps check passes on this archive, and names 00000002.history once it is gone', async () => {
    const walGaps = async (): Promise<{ ok: boolean; detail: string }> => {
      const result = await runCli('pms-backup', ['monitor', '--json'], env);
      assert.ok(result.code === 0 || result.code === 1, result.stderr);
      const check = (JSON.parse(result.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string }> }).checks.find(
        (c) => c.name === 'wal-gaps',
      );
      assert.ok(check, result.stdout);
      return check;
    };
    // archive_mode = always: the replica archives 00000002.history too, once it has followed the
    // new timeline, which can be seconds after the failover. Moved aside before that, it came back
    // (wal-push stored it again) and the check passed (seen once in CI). So every running member
    // must hold the file with nothing left to archive first.
    await cluster.waitForHealthy();
    await waitFor('every running member to have archived 00000002.history', async () =>
      cluster.members
        .filter((m) => m.running)
        .every(
          (m) =>
            existsSync(join(m.dataDir, 'pg_wal', '00000002.history')) &&
            !existsSync(join(m.dataDir, 'pg_wal', 'archive_status', '00000002.history.ready')),
        )
        ? true
        : undefined,
    );
    const whole = await walGaps();
    assert.equal(whole.ok, true, whole.detail);
    assert.match(whole.detail, /timeline 1 0{7}1[0-9A-F]{16}\.\.0{7}1[0-9A-F]{16}, then timeline 2 /);
    // Moved aside (same inode, so its metadata sidecar still matches when it comes back for the PITR below).
    const history = join(fixture.repoRoot, 'wal', 'history', '00000002.history.zst.gpg');
    const aside = join(fixture.work, '00000002.history.aside');
    renameSync(history, aside);
    try {
      const broken = await walGaps();
      assert.equal(broken.ok, false);
      assert.match(broken.detail, /00000002\.history is not archived/);
    } finally {
      renameSync(aside, history);
    }
  });

  test('PITR from the standby’s base backup to a moment before the failover and to one after it restores exactly the rows committed by then', async () => {
    assert.equal(await restoreAndCount(beforeFailover), 200);
    assert.equal(await restoreAndCount(afterFailover), 300);
  });
});
