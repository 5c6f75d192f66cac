import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startThrowawayCluster, type ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { freePort } from '../../postgres/free-port.js';
import { type GpgKeyPair, generateGpgKeyPair, signingEnv } from '../../testing/gpg-keys.js';
import { waitUntilMidUpload } from '../../testing/mid-upload.js';
import { binPath, runCli } from '../../testing/run-cli.js';
import { FINGERPRINT_SQL, SAMPLE_DATA_SQL, SAMPLE_SCHEMA_SQL } from '../../testing/sample-data.js';

let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let otherKey: GpgKeyPair;
let repoRoot: string;
let env: Record<string, string>;
let sourceFingerprint: string;

interface ManifestJson {
  id: string;
  kind: string;
  objects: Array<{ key: string; bytes: number; sha256: string }>;
  tables: Array<{ schema: string; name: string; rows: number }>;
  bytes: { plain: number; compressed: number; stored: number };
  keyFingerprints: string[];
}

async function createBackup(extraEnv: Record<string, string> = {}): Promise<ManifestJson> {
  const result = await runCli('pms-backup', ['create', '--json'], { ...env, ...extraEnv });
  assert.equal(result.code, 0, `create failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as ManifestJson;
}

async function databases(): Promise<string[]> {
  return (await cluster.psql('SELECT datname FROM pg_database ORDER BY 1')).split('\n');
}

before(async () => {
  [cluster, key, otherKey] = await Promise.all([
    startThrowawayCluster(),
    generateGpgKeyPair({ name: 'PMS Backup Test', passphrase: 'test passphrase ✓' }),
    generateGpgKeyPair({ name: 'Some Other Key' }),
  ]);
  await cluster.psql('CREATE DATABASE patient_telemetry');
  await cluster.psql(SAMPLE_SCHEMA_SQL + SAMPLE_DATA_SQL, 'patient_telemetry');
  sourceFingerprint = await cluster.psql(FINGERPRINT_SQL, 'patient_telemetry');
  repoRoot = mkdtempSync(join(tmpdir(), 'pms-repo-'));
  env = {
    ...cluster.postgresEnv,
    POSTGRES_DB: 'patient_telemetry',
    BACKUP_REPOSITORY: `file://${repoRoot}`,
    ...signingEnv(key),
    BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
    BACKUP_GPG_KEY_ID: key.fingerprint,
    BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile,
    BACKUP_GPG_PASSPHRASE_FILE: key.passphraseFile ?? '',
  };
});

after(async () => {
  await cluster?.destroy();
  key?.remove();
  otherKey?.remove();
  if (repoRoot) rmSync(repoRoot, { recursive: true, force: true });
});

describe('pms-backup create | list | restore (file repository)', () => {
  test('create writes an encrypted object and a manifest with versions, sizes, keys, sha256 and snapshot row counts', async () => {
    const manifest = await createBackup();
    assert.equal(manifest.kind, 'logical');
    assert.match(manifest.id, /^\d{8}T\d{6}Z-[0-9a-f]{4}$/);
    assert.deepEqual(manifest.keyFingerprints, [key.fingerprint]);
    const object = manifest.objects[0]!;
    const file = join(repoRoot, object.key);
    assert.equal(statSync(file).size, object.bytes, 'file:// object lives at <root>/<key>');
    assert.ok(manifest.bytes.compressed < manifest.bytes.plain, 'zstd compressed the dump');
    const rows = Object.fromEntries(manifest.tables.map((t) => [`${t.schema}.${t.name}`, t.rows]));
    assert.equal(rows['telemetry.device'], 200);
    assert.equal(rows['telemetry.reading_2026_10']! + rows['telemetry.reading_2026_11']!, 60000);
    assert.equal(rows['audit.event'], 5000);
    assert.equal(rows['public.empty_table'], 0);
    const stored = readFileSync(file);
    assert.equal(stored.includes(Buffer.from('SN-17')), false, 'no plaintext in the stored object');
    assert.ok(existsSync(join(repoRoot, 'backups', manifest.id, 'manifest.json')));
  });

  test('restore of latest equals the source for every type, schema, index and sequence', async () => {
    const result = await runCli('pms-backup', ['restore', 'latest', '--target-db', 'restored_full', '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as { ok: boolean; targetDb: string; tables: unknown[] };
    assert.equal(report.ok, true);
    assert.equal(report.targetDb, 'restored_full');
    assert.equal(await cluster.psql(FINGERPRINT_SQL, 'restored_full'), sourceFingerprint);
  });

  test('restore refuses an existing database and leaves it untouched', async () => {
    await cluster.psql('CREATE DATABASE occupied');
    await cluster.psql('CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (42)', 'occupied');
    const result = await runCli('pms-backup', ['restore', 'latest', '--target-db', 'occupied'], env);
    assert.equal(result.code, 7);
    assert.match(result.stderr, /PMS_ERR_TARGET_EXISTS: database occupied already exists/);
    assert.equal(await cluster.psql('SELECT x FROM keep_me', 'occupied'), '42');
  });

  test('break-glass: the stored object restores with gpg, zstd and pg_restore alone', async () => {
    const manifest = await createBackup();
    const object = join(repoRoot, manifest.objects[0]!.key);
    await cluster.psql('CREATE DATABASE break_glass');
    const passphrase = key.passphraseFile ?? '';
    const script = `set -o pipefail; gpg --batch --quiet --pinentry-mode loopback --passphrase-file "$PASSFILE" --decrypt "$OBJECT" | zstd -d | pg_restore --exit-on-error -d break_glass`;
    const run = spawnSync('bash', ['-c', script], {
      env: { ...cluster.libpqEnv, GNUPGHOME: key.gnupgHome, PASSFILE: passphrase, OBJECT: object },
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(await cluster.psql(FINGERPRINT_SQL, 'break_glass'), sourceFingerprint);
  });

  test('list shows complete backups newest first with id, kind, createdAt, bytes, status', async () => {
    const result = await runCli('pms-backup', ['list', '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    const rows = JSON.parse(result.stdout) as Array<{ id: string; kind: string; createdAt: string; bytes: number; status: string }>;
    assert.ok(rows.length >= 2);
    for (const row of rows) {
      assert.equal(row.status, 'complete');
      assert.equal(row.kind, 'logical');
      assert.ok(row.bytes > 0);
    }
    const times = rows.map((r) => r.createdAt);
    assert.deepEqual(times, [...times].sort().reverse());
    const human = await runCli('pms-backup', ['list'], env);
    assert.match(human.stdout, /complete/);
  });

  test('a tampered byte is refused with an integrity error and no database is left behind', async () => {
    const manifest = await createBackup();
    const file = join(repoRoot, manifest.objects[0]!.key);
    const original = readFileSync(file);
    try {
      for (const offset of [Math.floor(original.length / 2), original.length - 5]) {
        const fd = openSync(file, 'r+');
        const byte = Buffer.alloc(1);
        readSync(fd, byte, 0, 1, offset);
        writeSync(fd, Buffer.from([byte[0]! ^ 0x01]), 0, 1, offset);
        closeSync(fd);
        const before = await databases();
        const result = await runCli('pms-backup', ['restore', manifest.id, '--target-db', 'tampered'], env);
        assert.equal(result.code, 4, `tamper at ${offset}: ${result.stderr}`);
        assert.match(result.stderr, /PMS_ERR_INTEGRITY/);
        assert.deepEqual(await databases(), before, 'neither the target nor a staging database remains');
        writeFileSync(file, original);
      }
    } finally {
      writeFileSync(file, original);
    }
  });

  test('a wrong private key is named: which key IDs the backup needs and which were given', async () => {
    const before = await databases();
    const result = await runCli('pms-backup', ['restore', 'latest', '--target-db', 'wrong_key'], {
      ...env,
      BACKUP_GPG_PRIVATE_KEY_FILE: otherKey.privateKeyFile,
      BACKUP_GPG_PASSPHRASE_FILE: '',
    });
    assert.equal(result.code, 5, result.stderr);
    assert.match(result.stderr, /PMS_ERR_KEY/);
    assert.match(result.stderr, new RegExp(key.encryptionKeyId));
    assert.match(result.stderr, new RegExp(otherKey.fingerprint));
    assert.deepEqual(await databases(), before);
  });

  test('a wrong passphrase is a key error, and the passphrase is never printed', async () => {
    const wrong = join(repoRoot, '..', `wrong-pass-${process.pid}`);
    writeFileSync(wrong, 'not the passphrase\n');
    try {
      const result = await runCli('pms-backup', ['restore', 'latest', '--target-db', 'wrong_pass'], {
        ...env,
        BACKUP_GPG_PASSPHRASE_FILE: wrong,
      });
      assert.equal(result.code, 5);
      assert.match(result.stderr, /does not unlock private key/);
      assert.doesNotMatch(result.stderr, /not the passphrase|test passphrase/);
    } finally {
      rmSync(wrong, { force: true });
    }
  });

  test('BACKUP_GPG_KEY_ID that matches no key in the public key file is an error, not a silent success', async () => {
    const result = await runCli('pms-backup', ['create'], { ...env, BACKUP_GPG_KEY_ID: otherKey.fingerprint });
    assert.equal(result.code, 5);
    assert.match(result.stderr, /BACKUP_GPG_KEY_ID .* is not among the keys/);
  });

  test('several public keys (current + break-glass): the backup is encrypted to all, either private key restores it', async () => {
    const both = join(repoRoot, '..', `both-keys-${process.pid}.asc`);
    writeFileSync(both, readFileSync(key.publicKeyFile, 'utf8') + readFileSync(otherKey.publicKeyFile, 'utf8'));
    try {
      const manifest = await createBackup({ BACKUP_GPG_PUBLIC_KEY_FILE: both });
      assert.deepEqual([...manifest.keyFingerprints].sort(), [key.fingerprint, otherKey.fingerprint].sort());
      const result = await runCli('pms-backup', ['restore', manifest.id, '--target-db', 'by_break_glass_key'], {
        ...env,
        BACKUP_GPG_PRIVATE_KEY_FILE: otherKey.privateKeyFile,
        BACKUP_GPG_PASSPHRASE_FILE: '',
      });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(await cluster.psql(FINGERPRINT_SQL, 'by_break_glass_key'), sourceFingerprint);
    } finally {
      rmSync(both, { force: true });
    }
  });

  test('database down: create fails with a clear error naming the server and writes no manifest', async () => {
    const before = readdirSync(join(repoRoot, 'backups')).sort();
    const port = String(await freePort());
    const result = await runCli('pms-backup', ['create'], { ...env, POSTGRES_PORT: port });
    assert.equal(result.code, 6, result.stderr);
    assert.match(result.stderr, new RegExp(`PMS_ERR_DB_UNAVAILABLE: cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${port}`));
    assert.deepEqual(readdirSync(join(repoRoot, 'backups')).sort(), before);
  });

  test('restore of an unknown id or a damaged manifest gives a clear error', async () => {
    const missing = await runCli('pms-backup', ['restore', '20200101T000000Z-abcd', '--target-db', 'nope'], env);
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /PMS_ERR_NOT_FOUND: backup 20200101T000000Z-abcd does not exist/);
    const manifest = await createBackup();
    const manifestFile = join(repoRoot, 'backups', manifest.id, 'manifest.json');
    const original = readFileSync(manifestFile);
    writeFileSync(manifestFile, '{"id": "truncated');
    try {
      const corrupt = await runCli('pms-backup', ['restore', manifest.id, '--target-db', 'nope'], env);
      // The signature is checked before a byte of the manifest is parsed: a damaged manifest is
      // one no trusted key signed.
      assert.equal(corrupt.code, 4);
      assert.match(
        corrupt.stderr,
        /PMS_ERR_UNTRUSTED: backups\/\S+\/manifest.json is not trusted: its signature by [0-9A-F]{40} does not verify/,
      );
      const list = await runCli('pms-backup', ['list', '--json'], env);
      const rows = JSON.parse(list.stdout) as Array<{ id: string; status: string }>;
      assert.equal(rows.find((r) => r.id === manifest.id)?.status, 'untrusted');
    } finally {
      writeFileSync(manifestFile, original);
    }
  });

  test('a backup killed with SIGKILL mid-stream is never complete and restore latest skips it', async () => {
    await cluster.psql(
      'CREATE TABLE public.bulk AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) || repeat(md5(random()::text), 4) AS payload FROM generate_series(1, 400000) g',
      'patient_telemetry',
    );
    try {
      const before = await runCli('pms-backup', ['list', '--json'], env);
      const newestComplete = (JSON.parse(before.stdout) as Array<{ id: string; status: string }>).find((r) => r.status === 'complete')!.id;
      const child = spawn(process.execPath, [binPath('pms-backup'), 'create'], {
        env: { PATH: process.env['PATH'], ...env },
        stdio: 'ignore',
      });
      // Kill once encrypted bytes are being written (a temporary file is growing in the repository).
      assert.ok(await waitUntilMidUpload(join(repoRoot, 'backups'), child), 'the backup was caught mid-stream');
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('close', resolve));
      await sleep(300);
      const list = await runCli('pms-backup', ['list', '--json'], env);
      const rows = JSON.parse(list.stdout) as Array<{ id: string; status: string }>;
      assert.equal(rows.filter((r) => r.status === 'complete')[0]?.id, newestComplete, 'no new complete backup');
      const restore = await runCli('pms-backup', ['restore', 'latest', '--target-db', 'after_kill', '--json'], env);
      assert.equal(restore.code, 0, restore.stderr);
      assert.equal((JSON.parse(restore.stdout) as { id: string }).id, newestComplete);
    } finally {
      await cluster.psql('DROP TABLE public.bulk', 'patient_telemetry');
    }
  });
});
