import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import type { BaseManifest } from '../catalog/manifest.js';
import { startThrowawayCluster, type ThrowawayCluster } from '../postgres/throwaway-cluster.js';
import { type GpgKeyPair, generateGpgKeyPair } from '../testing/gpg-keys.js';
import { runCli } from '../testing/run-cli.js';
import { backupPoints } from './pg-basebackup.js';
import { TarEntryCapture } from './tar-entry-capture.js';
import { archiveCommand } from '../restore/pitr/recovery-settings.js';

const PG_UID = Number(process.env['PMS_TEST_PG_UID'] ?? 101);
let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let work: string;
let repoRoot: string;
let env: Record<string, string>;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'pms-base-points-'));
  chmodSync(work, 0o755);
  key = await generateGpgKeyPair({ name: 'PMS Base Points Test' });
  repoRoot = join(work, 'repo');
  mkdirSync(repoRoot, { mode: 0o700 });
  chownSync(repoRoot, PG_UID, -1);
  env = { BACKUP_REPOSITORY: `file://${repoRoot}`, BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile, BACKUP_GPG_KEY_ID: key.fingerprint, BACKUP_LOG_DIR: join(work, 'logs') };
  cluster = await startThrowawayCluster({
    settings: { archive_mode: 'on', wal_level: 'replica', archive_command: archiveCommand() },
    serverEnv: env,
  });
  await cluster.psql('CREATE DATABASE patient_telemetry');
  await cluster.psql('CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, 50000) g', 'patient_telemetry');
});

after(async () => {
  await cluster?.destroy();
  key?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('base-backup without the tar passing through Node', () => {
  test("the manifest's start/stop points (from the archived backup history file) and plain size equal what the tar itself records", async () => {
    const result = await runCli('pms-backup', ['base-backup', '--json'], { ...cluster.postgresEnv, ...env });
    assert.equal(result.code, 0, result.stderr);
    const manifest = JSON.parse(result.stdout) as BaseManifest;
    // Break-glass path: gpg --decrypt | zstd -d gives back pg_basebackup's tar.
    const decrypted = spawnSync('gpg', ['--batch', '--quiet', '--decrypt', join(repoRoot, manifest.objects[0]!.key)], {
      env: { ...process.env, GNUPGHOME: key.gnupgHome },
      maxBuffer: 1 << 30,
    });
    assert.equal(decrypted.status, 0, decrypted.stderr.toString());
    const tar = spawnSync('zstd', ['-d', '-q', '-c'], { input: decrypted.stdout, maxBuffer: 1 << 30 });
    assert.equal(tar.status, 0);
    assert.equal(tar.stdout.length, manifest.bytes.plain, 'bytes.plain is the exact tar size');
    const capture = new TarEntryCapture(['backup_label', 'backup_manifest']);
    await pipeline(Readable.from([tar.stdout]), capture, new Writable({ write: (_chunk, _encoding, callback) => callback() }));
    const fromTar = backupPoints(capture.entries.get('backup_label'), capture.entries.get('backup_manifest'));
    assert.deepEqual({ startLsn: manifest.startLsn, stopLsn: manifest.stopLsn, timeline: manifest.timeline }, fromTar);
  });
});
