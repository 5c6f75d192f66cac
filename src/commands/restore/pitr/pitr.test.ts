import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { BaseManifest } from '../../../repository/manifest.js';
import { type DecryptionKeys, loadDecryptionKeys } from '../../../crypto/keys.js';
import { type TrustPolicy, loadTrustedSigners } from '../../../crypto/signing.js';
import { isPmsError } from '../../../errors/catalogue.js';
import { startThrowawayCluster, type ThrowawayCluster } from '../../../postgres/throwaway-cluster.js';
import { FsStorage } from '../../../storage/fs/fs-storage.js';
import { type ArchiveFixture, createArchiveFixture } from '../../../testing/archive-fixture.js';
import type { GpgKeyPair } from '../../../testing/gpg-keys.js';
import { binPath, runCli } from '../../../testing/run-cli.js';
import { pruneWal } from '../../../wal/wal-retention.js';
import { summarizeWalArchive } from '../../../wal/wal-archive-summary.js';
import { recoverBaseBackupInThrowawayCluster } from './recover-in-throwaway-cluster.js';
import { restorePitr } from './restore-pitr.js';
import { archiveCommand, spoolFirstRestoreCommand } from './recovery-settings.js';

let fixture: ArchiveFixture;
let source: ThrowawayCluster;
const restored: ThrowawayCluster[] = [];
let key: GpgKeyPair;
let keys: DecryptionKeys;
let trust: TrustPolicy;
let work: string;
let repoRoot: string;
let env: Record<string, string>;
let base: BaseManifest;

const archiveSettings = () => ({ archive_mode: 'on', wal_level: 'replica', archive_command: archiveCommand() });

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, seconds = 60): Promise<T> {
  for (let i = 0; i < seconds * 10; i += 1) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Forces the current segment out and waits until the server reports it archived. */
async function archiveCurrentWal(cluster: ThrowawayCluster): Promise<void> {
  const name = await cluster.psql('SELECT pg_walfile_name(pg_current_wal_lsn()) FROM pg_switch_wal()');
  await waitFor(`${name} archived`, async () =>
    (await cluster.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")) >= name ? true : undefined,
  );
}

/** `restore --pitr` into a fresh data directory, then start PostgreSQL on it as an operator would. */
async function restoreAndStart(target: Date | 'latest'): Promise<ThrowawayCluster> {
  const storage = new FsStorage(repoRoot);
  const cluster = await startThrowawayCluster({
    settings: {},
    serverEnv: env,
    populate: async (dataDir) => {
      await restorePitr({ storage, keys, trust, target, dataDir });
    },
  });
  restored.push(cluster);
  await waitFor('recovery to finish and promote', async () =>
    (await cluster.psql('SELECT pg_is_in_recovery()')) === 'f' ? true : undefined,
  );
  return cluster;
}

async function labels(cluster: ThrowawayCluster): Promise<string[]> {
  return (await cluster.psql('SELECT DISTINCT label FROM reading ORDER BY 1', 'patient_telemetry')).split('\n').filter(Boolean);
}

async function insertBatch(cluster: ThrowawayCluster, label: string): Promise<void> {
  await cluster.psql(`INSERT INTO reading (label, value) SELECT '${label}', g FROM generate_series(1, 1000) g`, 'patient_telemetry');
}

/** A moment strictly between two commits: no timing is asserted, the gaps only order the events. */
async function pointBetweenCommits(): Promise<Date> {
  await sleep(1100);
  const target = new Date();
  await sleep(1100);
  return target;
}

before(async () => {
  fixture = await createArchiveFixture('pitr-test', { passphrase: 'pitr passphrase' });
  ({ work, key, repoRoot } = fixture);
  env = { ...fixture.env };
  keys = await loadDecryptionKeys(key.privateKeyFile, key.passphraseFile);
  trust = { trusted: await loadTrustedSigners(key.publicKeyFile) };
  source = await startThrowawayCluster({ settings: archiveSettings(), serverEnv: env });
  await source.psql('CREATE DATABASE patient_telemetry');
  await source.psql('CREATE TABLE reading (id bigserial PRIMARY KEY, label text NOT NULL, value int)', 'patient_telemetry');
  await insertBatch(source, 'a-before-base');
});

after(async () => {
  for (const cluster of restored) await cluster.destroy().catch(() => undefined);
  await source?.destroy();
  fixture?.remove();
});

describe('point-in-time recovery (base-backup, wal-push, restore --pitr, wal-fetch)', () => {
  test('base-backup writes a manifest with LSNs, timeline, system id and sizes, only once its stop segment is archived', async () => {
    const result = await runCli('pms-backup', ['base-backup', '--json'], { ...source.postgresEnv, ...env });
    assert.equal(result.code, 0, result.stderr);
    base = JSON.parse(result.stdout) as BaseManifest;
    assert.equal(base.kind, 'base');
    assert.equal(base.timeline, 1);
    assert.equal(base.systemIdentifier, await source.psql('SELECT system_identifier FROM pg_control_system()'));
    assert.match(base.startLsn, /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.ok(base.stopWalSegment >= base.startWalSegment);
    assert.ok(base.bytes.compressed < base.bytes.plain);
    assert.ok(
      existsSync(join(repoRoot, 'wal', '00000001', `${base.stopWalSegment}.zst.gpg`)),
      'stop segment archived before the manifest was written',
    );
    assert.ok(existsSync(join(repoRoot, base.objects[0]!.key)));
  });

  test('restore to T: rows committed before T are present, rows committed after T are absent; the server promotes onto timeline 2', async () => {
    await insertBatch(source, 'b-before-t1');
    const t1 = await pointBetweenCommits();
    await insertBatch(source, 'c-after-t1');
    await archiveCurrentWal(source);

    const first = await restoreAndStart(t1);
    assert.deepEqual(await labels(first), ['a-before-base', 'b-before-t1']);
    assert.equal(await first.psql('SELECT count(*) FROM reading', 'patient_telemetry'), '2000');
    assert.equal((await first.psql('SELECT pg_walfile_name(pg_current_wal_lsn())')).slice(0, 8), '00000002');
    const auto = readFileSync(join(first.dataDir, 'postgresql.auto.conf'), 'utf8');
    const system = await source.psql('SELECT system_identifier FROM pg_control_system()');
    assert.ok(
      auto.includes(
        `restore_command = '${spoolFirstRestoreCommand(system, process.execPath, binPath('pms-backup')).replaceAll("'", "''")}'`,
      ),
      auto,
    );
    assert.ok(auto.includes(`recovery_target_time = '${t1.toISOString().replace('T', ' ').replace('Z', '+00')}'`), auto);
    assert.ok(auto.includes("recovery_target_action = 'promote'"));
  });

  test('a second PITR after the first follows the new timeline (its .history file is archived) and lands on timeline 3', async () => {
    const first = restored[0]!;
    await waitFor('00000002.history archived', async () =>
      existsSync(join(repoRoot, 'wal', 'history', '00000002.history.zst.gpg')) ? true : undefined,
    );
    await insertBatch(first, 'd-timeline2-before-t2');
    const t2 = await pointBetweenCommits();
    await insertBatch(first, 'e-timeline2-after-t2');
    await archiveCurrentWal(first);

    const second = await restoreAndStart(t2);
    assert.deepEqual(await labels(second), ['a-before-base', 'b-before-t1', 'd-timeline2-before-t2']);
    assert.equal((await second.psql('SELECT pg_walfile_name(pg_current_wal_lsn())')).slice(0, 8), '00000003');
  });

  test('restore into a non-empty directory is refused and the directory is left untouched', async () => {
    const target = join(work, 'occupied');
    mkdirSync(target);
    writeFileSync(join(target, 'PG_VERSION'), '15\n');
    await assert.rejects(
      restorePitr({ storage: new FsStorage(repoRoot), keys, trust, target: 'latest', dataDir: target }),
      (error: unknown) => isPmsError(error, 'PMS_ERR_TARGET_EXISTS') && /not empty/.test(error.message),
    );
    assert.deepEqual(readdirSync(target), ['PG_VERSION']);
    assert.equal(readFileSync(join(target, 'PG_VERSION'), 'utf8'), '15\n');
  });

  test('a target before the end of every base backup is refused with the reason', async () => {
    await assert.rejects(
      restorePitr({
        storage: new FsStorage(repoRoot),
        keys,
        trust,
        target: new Date(Date.parse(base.finishedAt) - 60_000),
        dataDir: join(work, 'too-early'),
      }),
      (error: unknown) => isPmsError(error, 'PMS_ERR_NOT_FOUND') && /no complete base backup .* finished before/.test(error.message),
    );
    assert.ok(!existsSync(join(work, 'too-early')));
  });

  test('the archive summary reports the restorable window and no gaps; pruning keeps every segment from the base backup on', async () => {
    const storage = new FsStorage(repoRoot);
    const summary = await summarizeWalArchive(storage, trust);
    assert.deepEqual(summary.gaps, []);
    assert.equal(summary.earliestRestorableTime?.toISOString(), base.finishedAt);
    assert.ok(summary.latestRestorableTime !== undefined && summary.latestRestorableTime >= summary.earliestRestorableTime!);
    assert.ok(summary.segments >= 3 && summary.newestSegment !== undefined);
    const doomed = await pruneWal(storage, { keepFromSegment: base.startWalSegment, dryRun: true });
    assert.ok(
      doomed.every((k) => k.slice(k.lastIndexOf('/') + 1).slice(8, 24) < base.startWalSegment.slice(8)),
      doomed.join(', '),
    );
    assert.ok(!doomed.some((k) => k.includes('/history/')), 'timeline history files are never pruned');
  });

  test('recoverBaseBackupInThrowawayCluster recovers the base backup to the end of the archive and leaves a promoted server', async () => {
    const { cluster, filesVerified } = await recoverBaseBackupInThrowawayCluster({
      storage: new FsStorage(repoRoot),
      keys,
      trust,
      manifest: base,
      protectedFiles: [env['BACKUP_GPG_PRIVATE_KEY_FILE'] ?? ''],
    });
    assert.ok(filesVerified, 'pg_verifybackup checked the unpacked files');
    try {
      assert.equal(await cluster.psql('SELECT pg_is_in_recovery()'), 'f');
      assert.ok((await labels(cluster)).includes('b-before-t1'));
      assert.equal(await cluster.psql('SHOW archive_mode'), 'off', 'verification never archives into the repository');
    } finally {
      await cluster.destroy();
    }
  });
});
