import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import type { BaseManifest } from '../../repository/manifest.js';
import { startThrowawayCluster, type ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { type ArchiveFixture, createArchiveFixture } from '../../testing/archive-fixture.js';
import type { GpgKeyPair } from '../../testing/gpg-keys.js';
import { runCli } from '../../testing/run-cli.js';
import { TarEntryCapture } from '../../testing/tar-entry-capture.js';
import { archiveCommand } from '../restore/pitr/recovery-settings.js';

let fixture: ArchiveFixture;
let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let repoRoot: string;
let env: Record<string, string>;

before(async () => {
  fixture = await createArchiveFixture('base-points');
  ({ key, repoRoot } = fixture);
  env = { ...fixture.env };
  cluster = await startThrowawayCluster({
    settings: { archive_mode: 'on', wal_level: 'replica', archive_command: archiveCommand() },
    serverEnv: env,
  });
  await cluster.psql('CREATE DATABASE patient_telemetry');
  await cluster.psql(
    'CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, 50000) g',
    'patient_telemetry',
  );
});

after(async () => {
  await cluster?.destroy();
  fixture?.remove();
});

describe('base-backup over the replication protocol', () => {
  test("the manifest's start/stop points and plain size equal what the tar and the server's backup_manifest record", async () => {
    const result = await runCli('pms-backup', ['base-backup', '--json'], { ...cluster.postgresEnv, ...env });
    assert.equal(result.code, 0, result.stderr);
    const manifest = JSON.parse(result.stdout) as BaseManifest;
    // Break-glass path: gpg --decrypt | zstd -d gives back the tar, and gpg --decrypt the
    // server's backup_manifest.
    const decrypt = (objectKey: string): Buffer => {
      const decrypted = spawnSync('gpg', ['--batch', '--quiet', '--decrypt', join(repoRoot, objectKey)], {
        env: { ...process.env, GNUPGHOME: key.gnupgHome },
        maxBuffer: 1 << 30,
      });
      assert.equal(decrypted.status, 0, decrypted.stderr.toString());
      return decrypted.stdout;
    };
    assert.equal(manifest.objects.length, 2);
    const tar = spawnSync('zstd', ['-d', '-q', '-c'], { input: decrypt(manifest.objects[0]!.key), maxBuffer: 1 << 30 });
    assert.equal(tar.status, 0);
    assert.equal(tar.stdout.length, manifest.bytes.plain, 'bytes.plain is the exact tar size');
    const capture = new TarEntryCapture(['backup_label', 'PG_VERSION']);
    await pipeline(Readable.from([tar.stdout]), capture, new Writable({ write: (_chunk, _encoding, callback) => callback() }));
    assert.equal(capture.entries.get('PG_VERSION')?.toString().trim(), '15');
    const serverManifest = JSON.parse(decrypt(manifest.objects[1]!.key).toString('utf8')) as {
      'WAL-Ranges': Array<{ Timeline: number; 'Start-LSN': string; 'End-LSN': string }>;
      Files: unknown[];
    };
    assert.ok(serverManifest.Files.length > 100, 'backup_manifest lists the files');
    const label = capture.entries.get('backup_label')?.toString('utf8') ?? '';
    const range = serverManifest['WAL-Ranges'].at(-1);
    assert.deepEqual(
      { startLsn: manifest.startLsn, stopLsn: manifest.stopLsn, timeline: manifest.timeline },
      {
        startLsn: /^START WAL LOCATION: (\S+)/m.exec(label)?.[1],
        stopLsn: range?.['End-LSN'],
        timeline: Number(/^START TIMELINE: (\d+)/m.exec(label)?.[1]),
      },
    );
    assert.equal(range?.['Start-LSN'], manifest.startLsn);
  });

  test('BACKUP_BASE_ZSTD_WORKERS=0 (compression in the backend itself) gives a complete backup of the same data', async () => {
    const result = await runCli('pms-backup', ['base-backup', '--json'], { ...cluster.postgresEnv, ...env, BACKUP_BASE_ZSTD_WORKERS: '0' });
    assert.equal(result.code, 0, result.stderr);
    const manifest = JSON.parse(result.stdout) as BaseManifest;
    assert.ok(manifest.bytes.plain > 1_000_000 && manifest.bytes.stored < manifest.bytes.plain);
  });
});
