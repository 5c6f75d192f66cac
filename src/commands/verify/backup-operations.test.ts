import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startThrowawayCluster, type ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { freePort } from '../../postgres/free-port.js';
import { type GpgKeyPair, generateGpgKeyPair, signingEnv } from '../../testing/gpg-keys.js';
import { type PushgatewayHarness, startPushgateway } from '../../testing/pushgateway-harness.js';
import { runCli } from '../../testing/run-cli.js';
import { SAMPLE_DATA_SQL, SAMPLE_SCHEMA_SQL } from '../../testing/sample-data.js';

let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let expiredKey: GpgKeyPair;
let rotatedKey: GpgKeyPair;
let gateway: PushgatewayHarness;
let work: string;
let repoRoot: string;
let logDir: string;
let env: Record<string, string>;

// verify's children get a TMPDIR of this test's own, so other processes on the machine (tests
// running in parallel) cannot make a leftover look like ours or hide one.
let verifyTmp: string;
const throwawayDirs = () =>
  readdirSync(verifyTmp)
    .filter((d) => d.startsWith('pms-pg-'))
    .sort();
/** Throwaway directories created since `before` that still exist (other processes may remove theirs meanwhile). */
const leftSince = (before: string[]) => throwawayDirs().filter((d) => !before.includes(d));

async function cli(args: string[], extra: Record<string, string> = {}) {
  return runCli('pms-backup', args, { ...env, ...extra });
}

async function createdId(extra: Record<string, string> = {}): Promise<string> {
  const result = await cli(['create', '--json'], extra);
  assert.equal(result.code, 0, result.stderr);
  return (JSON.parse(result.stdout) as { id: string }).id;
}

before(async () => {
  const longAgo = new Date(Date.now() - 3 * 365 * 86400_000);
  [cluster, key, expiredKey, rotatedKey, gateway] = await Promise.all([
    startThrowawayCluster(),
    generateGpgKeyPair({ name: 'PMS Ops Key', passphrase: 'ops passphrase' }),
    generateGpgKeyPair({ name: 'PMS Expired Key', createdAt: longAgo, expire: '1y' }),
    generateGpgKeyPair({ name: 'PMS Rotated Key' }),
    startPushgateway(),
  ]);
  await cluster.psql('CREATE DATABASE patient_telemetry');
  await cluster.psql(SAMPLE_SCHEMA_SQL + SAMPLE_DATA_SQL, 'patient_telemetry');
  work = mkdtempSync(join(tmpdir(), 'pms-ops-'));
  chmodSync(work, 0o755);
  repoRoot = join(work, 'repo');
  logDir = join(work, 'logs');
  verifyTmp = join(work, 'tmp');
  mkdirSync(verifyTmp);
  chmodSync(verifyTmp, 0o1777);
  rmSync(repoRoot, { force: true, recursive: true });
  (await import('node:fs')).mkdirSync(repoRoot);
  env = {
    ...cluster.postgresEnv,
    POSTGRES_DB: 'patient_telemetry',
    BACKUP_REPOSITORY: `file://${repoRoot}`,
    // The trusted signers hold the key the rotation test switches to, as a real rotation would.
    ...signingEnv(key, [key, rotatedKey]),
    BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
    BACKUP_GPG_KEY_ID: key.fingerprint,
    BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile,
    BACKUP_GPG_PASSPHRASE_FILE: key.passphraseFile ?? '',
    BACKUP_LOG_DIR: logDir,
    TMPDIR: verifyTmp,
    PUSHGATEWAY_URL: gateway.url,
    POD_NAME: 'pms-backup-test-pod',
  };
});

after(async () => {
  await Promise.allSettled([cluster?.destroy(), gateway?.stop()]);
  for (const k of [key, expiredKey, rotatedKey]) k?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('backup operations', () => {
  test('verify latest restores into a throwaway server, passes every check, stores the record and leaves nothing behind', async () => {
    const id = await createdId();
    const dirsBefore = throwawayDirs();
    const databasesBefore = await cluster.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database");
    const result = await cli(['verify', 'latest', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as {
      id: string;
      ok: boolean;
      checks: Array<{ name: string; ok: boolean; detail: string }>;
      durationSeconds: number;
    };
    assert.deepEqual(Object.keys(report).sort(), ['checks', 'durationSeconds', 'id', 'ok']);
    assert.equal(report.id, id);
    assert.equal(report.ok, true);
    const names = report.checks.map((c) => c.name);
    for (const name of ['sha256', 'openpgp-integrity', 'restore', 'row-counts', 'amcheck'])
      assert.ok(names.includes(name), `check ${name} ran`);
    assert.ok(report.checks.every((c) => c.ok));
    assert.match(report.checks.find((c) => c.name === 'amcheck')!.detail, /bt_index_check passed on [1-9]\d* B-tree indexes/);
    assert.ok(
      readdirSync(join(repoRoot, 'backups', id)).some((f) => /^verification-\d{8}T\d{6}Z\.json$/.test(f)),
      'verification record stored beside the backup',
    );
    assert.deepEqual(leftSince(dirsBefore), [], 'the throwaway server removed its files');
    assert.equal(
      await cluster.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database"),
      databasesBefore,
      'production server untouched',
    );
    assert.ok(readdirSync(logDir).some((f) => /^verification_\d{8}\.log$/.test(f)));
  });

  test('a tampered backup fails verify (exit 1) naming the failed check, and leaves nothing behind', async () => {
    const id = await createdId();
    const dir = join(repoRoot, 'backups', id);
    const object = join(dir, readdirSync(dir).find((f) => f.endsWith('.gpg'))!);
    const bytes = readFileSync(object);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    writeFileSync(object, bytes);
    const dirsBefore = throwawayDirs();
    try {
      const result = await cli(['verify', id, '--json']);
      assert.equal(result.code, 1, result.stderr);
      const report = JSON.parse(result.stdout) as { ok: boolean; checks: Array<{ name: string; ok: boolean }> };
      assert.equal(report.ok, false);
      assert.ok(report.checks.some((c) => !c.ok && ['sha256', 'openpgp-integrity', 'restore'].includes(c.name)));
      assert.deepEqual(leftSince(dirsBefore), []);
    } finally {
      // Later tests verify "latest": the tampered backup must not stay the newest.
      rmSync(dir, { recursive: true });
    }
  });

  test('a truncated backup: verify fails its size check before decrypting (expected and found sizes), restore says so once', async () => {
    const id = await createdId();
    const dir = join(repoRoot, 'backups', id);
    const name = readdirSync(dir).find((f) => f.endsWith('.gpg'))!;
    const object = join(dir, name);
    const bytes = readFileSync(object);
    writeFileSync(object, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const dirsBefore = throwawayDirs();
    try {
      const verified = await cli(['verify', id, '--json']);
      assert.equal(verified.code, 1, verified.stderr);
      const report = JSON.parse(verified.stdout) as { ok: boolean; checks: Array<{ name: string; ok: boolean; detail: string }> };
      const failed = report.checks.filter((c) => !c.ok);
      assert.deepEqual(
        failed.map((c) => c.name),
        ['size'],
      );
      assert.equal(
        failed[0]?.detail,
        `backups/${id}/${name} failed its size check (expected ${bytes.length} bytes, found ${Math.floor(bytes.length / 2)} bytes): the stored object was modified or truncated; refusing it`,
      );
      assert.ok(!report.checks.some((c) => c.name === 'restore'), 'nothing was decrypted or restored');
      assert.deepEqual(leftSince(dirsBefore), [], 'no throwaway server was started');
      const restored = await cli(['restore', id, '--target-db', `truncated_${Date.now()}`]);
      assert.equal(restored.code, 4, restored.stderr);
      const line = restored.stderr.split('\n').find((l) => l.startsWith('error PMS_ERR_INTEGRITY')) ?? '';
      assert.match(line, /failed its size check \(expected \d+ bytes, found \d+ bytes\)/);
      assert.equal(line.split('failed its').length, 2, `worded once: ${line}`);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test('a modified backup of the same size: verify fails its sha256 check with both digests, before decrypting', async () => {
    const id = await createdId();
    const dir = join(repoRoot, 'backups', id);
    const name = readdirSync(dir).find((f) => f.endsWith('.gpg'))!;
    const object = join(dir, name);
    const bytes = readFileSync(object);
    bytes[bytes.length - 40]! ^= 0x01;
    writeFileSync(object, bytes);
    try {
      const verified = await cli(['verify', id, '--json']);
      assert.equal(verified.code, 1, verified.stderr);
      const report = JSON.parse(verified.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string }> };
      const failed = report.checks.filter((c) => !c.ok);
      assert.deepEqual(
        failed.map((c) => c.name),
        ['sha256'],
      );
      assert.match(
        failed[0]?.detail ?? '',
        new RegExp(`^backups/${id}/${name.replace('.', '\\.')} failed its sha256 check \\(expected [0-9a-f]{64}, found [0-9a-f]{64}\\)`),
      );
      const restored = await cli(['restore', id, '--target-db', `modified_${Date.now()}`]);
      assert.equal(restored.code, 4, restored.stderr);
      const line = restored.stderr.split('\n').find((l) => l.startsWith('error PMS_ERR_INTEGRITY')) ?? '';
      assert.match(line, /failed its sha256 check \(expected [0-9a-f]{64}, found [0-9a-f]{64}\)/, line);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test('a backup that failed verification is `failed` in list, skipped by latest with a note, and restoring it names the newest good one', async () => {
    const good = await createdId();
    const bad = await createdId();
    const dir = join(repoRoot, 'backups', bad);
    const object = join(dir, readdirSync(dir).find((f) => f.endsWith('.gpg'))!);
    const bytes = readFileSync(object);
    bytes[bytes.length - 40]! ^= 0x01;
    writeFileSync(object, bytes);
    try {
      assert.equal((await cli(['verify', bad])).code, 1);
      const listed = await cli(['list', '--json']);
      assert.equal(listed.code, 0, listed.stderr);
      const rows = JSON.parse(listed.stdout) as Array<{ id: string; status: string; verification?: { ok: boolean; failed: string[] } }>;
      const badRow = rows.find((r) => r.id === bad);
      assert.equal(badRow?.status, 'failed');
      assert.deepEqual(badRow?.verification?.failed, ['sha256']);
      assert.equal(rows.find((r) => r.id === good)?.status, 'complete');
      const text = await cli(['list']);
      assert.match(text.stdout, new RegExp(`^${bad} +logical +failed .* FAILED \\d+m ago +failed: sha256$`, 'm'));

      const target = `latest_good_${Date.now()}`;
      const restored = await cli(['restore', 'latest', '--target-db', target, '--json']);
      assert.equal(restored.code, 0, restored.stderr);
      assert.equal((JSON.parse(restored.stdout) as { id: string }).id, good);
      assert.match(restored.stderr, new RegExp(`latest skips backup ${bad}: its verification of \\S+ failed \\(sha256\\)`));
      await cluster.psql(`DROP DATABASE ${target}`);

      const direct = await cli(['restore', bad, '--target-db', `direct_bad_${Date.now()}`]);
      assert.equal(direct.code, 4, direct.stderr);
      assert.match(
        direct.stderr,
        new RegExp(`the newest other backup is ${good} \\(not verified yet\\): pms-backup restore ${good} --target-db NAME`),
      );
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test('an altered manifest is refused before it is parsed (exit 4, PMS_ERR_UNTRUSTED naming the object and its signer)', async () => {
    const id = await createdId();
    const manifest = join(repoRoot, 'backups', id, 'manifest.json');
    const original = readFileSync(manifest);
    writeFileSync(manifest, original.toString().replace('"kind": "logical"', '"kind": "logical", "surprise": 1'));
    try {
      const result = await cli(['verify', id]);
      assert.equal(result.code, 4);
      assert.match(
        result.stderr,
        new RegExp(`PMS_ERR_UNTRUSTED: backups/${id}/manifest.json is not trusted: its signature by ${key.fingerprint} does not verify`),
      );
    } finally {
      rmSync(join(repoRoot, 'backups', id), { recursive: true });
    }
  });

  test('keys --json lists fingerprint, algorithm, size and expiry of public and private keys', async () => {
    const result = await cli(['keys', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const keys = JSON.parse(result.stdout) as {
      keyIdMatches: boolean;
      public: Array<{ fingerprint: string; algorithm: string; expiresAt: string | null }>;
      private: Array<{ fingerprint: string; secret: boolean }>;
    };
    assert.equal(keys.keyIdMatches, true);
    assert.equal(keys.public[0]?.fingerprint, key.fingerprint);
    assert.equal(keys.public[0]?.algorithm, 'eddsaLegacy');
    assert.ok(keys.public[0]?.expiresAt);
    assert.equal(keys.private[0]?.secret, true);
  });

  test('an expired key: create refuses to encrypt to it and monitor fails its key check', async () => {
    const expiredEnv = { BACKUP_GPG_PUBLIC_KEY_FILE: expiredKey.publicKeyFile, BACKUP_GPG_KEY_ID: expiredKey.fingerprint };
    const create = await cli(['create'], expiredEnv);
    assert.equal(create.code, 5);
    assert.match(create.stderr, /PMS_ERR_KEY_EXPIRED: key [0-9A-F]{40} expired on/);
    const monitor = await cli(['monitor', '--json'], expiredEnv);
    assert.equal(monitor.code, 1);
    const report = JSON.parse(monitor.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string }> };
    const keyCheck = report.checks.find((c) => c.name === 'key-expiry')!;
    assert.equal(keyCheck.ok, false);
    assert.match(keyCheck.detail, /EXPIRED/);
  });

  test('monitor passes when everything is fresh, writes backup_monitoring_YYYYMMDD.json, and fails on age and size deviation', async () => {
    await cli(['verify', 'latest']);
    const good = await cli(['monitor', '--json']);
    assert.equal(good.code, 0, good.stdout + good.stderr);
    const day = new Date().toISOString().slice(0, 10).replace(/-/g, '');
    assert.ok(existsSync(join(logDir, `backup_monitoring_${day}.json`)));
    const stale = await cli(['monitor', '--json'], { BACKUP_MAX_AGE_HOURS: '0.00001' });
    assert.equal(stale.code, 1);
    assert.equal(
      (JSON.parse(stale.stdout) as { checks: Array<{ name: string; ok: boolean }> }).checks.find((c) => c.name === 'backup-age')?.ok,
      false,
    );
    await cluster.psql(
      'CREATE TABLE public.growth AS SELECT g, repeat(md5(g::text), 20) AS pad FROM generate_series(1, 40000) g',
      'patient_telemetry',
    );
    try {
      await createdId();
      const deviated = await cli(['monitor', '--json']);
      const check = (JSON.parse(deviated.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string }> }).checks.find(
        (c) => c.name === 'size-deviation',
      )!;
      assert.equal(check.ok, false, check.detail);
      assert.equal(deviated.code, 1);
    } finally {
      await cluster.psql('DROP TABLE public.growth', 'patient_telemetry');
    }
  });

  test('the Pushgateway holds the seed metrics after create and monitor, and a failure counter after a failed create', async () => {
    await createdId();
    await cli(['monitor']);
    for (const metric of ['pms_backup_duration_seconds', 'pms_backup_size_bytes', 'pms_backup_success_total', 'pms_backup_age_seconds']) {
      assert.ok((await gateway.find(metric)).length > 0, `${metric} pushed`);
    }
    const successes = await gateway.find('pms_backup_success_total', { command: 'create' });
    assert.ok((successes[0]?.value ?? 0) >= 1);
    const failed = await cli(['create'], { POSTGRES_PORT: String(await freePort()) });
    assert.equal(failed.code, 6);
    const failures = await gateway.find('pms_backup_failure_total', { command: 'create' });
    assert.ok((failures[0]?.value ?? 0) >= 1, 'failure counter pushed');
  });

  test('an unreachable Pushgateway is a warning, never the reason a backup fails', async () => {
    const result = await cli(['create'], { PUSHGATEWAY_URL: `http://127.0.0.1:${await freePort()}`, PUSHGATEWAY_TIMEOUT_SECONDS: '1' });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /not pushed to the Pushgateway/);
  });

  test('key rotation: a backup made before rotation restores after it, and new backups use the new key', async () => {
    const before = await createdId();
    const rotatedPublic = join(work, 'rotated-public.asc');
    const allPrivate = join(work, 'all-private.asc');
    writeFileSync(rotatedPublic, readFileSync(rotatedKey.publicKeyFile));
    writeFileSync(allPrivate, readFileSync(rotatedKey.privateKeyFile, 'utf8') + readFileSync(key.privateKeyFile, 'utf8'));
    const rotated = {
      BACKUP_GPG_PUBLIC_KEY_FILE: rotatedPublic,
      BACKUP_GPG_KEY_ID: rotatedKey.fingerprint,
      BACKUP_GPG_PRIVATE_KEY_FILE: allPrivate,
    };
    const after = await cli(['create', '--json'], rotated);
    assert.equal(after.code, 0, after.stderr);
    assert.deepEqual((JSON.parse(after.stdout) as { keyFingerprints: string[] }).keyFingerprints, [rotatedKey.fingerprint]);
    const oldRestore = await cli(['restore', before, '--target-db', 'before_rotation'], rotated);
    assert.equal(oldRestore.code, 0, oldRestore.stderr);
    const newRestore = await cli(['restore', 'latest', '--target-db', 'after_rotation'], rotated);
    assert.equal(newRestore.code, 0, newRestore.stderr);
    const audit = JSON.parse((await cli(['audit', '--json'])).stdout) as Array<{ operation: string; details: { added?: string[] } }>;
    assert.ok(
      audit.some((r) => r.operation === 'keys.changed' && r.details.added?.includes(rotatedKey.fingerprint)),
      'the key change was audited',
    );
  });

  test('signing-key rotation: backups signed by a retired key stay restorable while it is listed, and are refused once it is removed', async () => {
    const before = await createdId();
    // rotatedKey becomes the jobs' signing key; the retired one stays in the trusted signers.
    const both = signingEnv(rotatedKey, [rotatedKey, key]);
    const keys = JSON.parse((await cli(['keys', '--json'], both)).stdout) as {
      signing: { fingerprint: string; trusted: boolean };
      trustedSigners: Array<{ fingerprint: string }>;
      signingProblems: string[];
    };
    assert.equal(keys.signing.fingerprint, rotatedKey.fingerprint);
    assert.equal(keys.signing.trusted, true);
    assert.deepEqual(keys.trustedSigners.map((k) => k.fingerprint).sort(), [key.fingerprint, rotatedKey.fingerprint].sort());
    assert.deepEqual(keys.signingProblems, []);
    const after = await cli(['create', '--json'], both);
    assert.equal(after.code, 0, after.stderr);
    assert.equal((JSON.parse(after.stdout) as { signedBy: string }).signedBy, rotatedKey.fingerprint);
    const old = await cli(['restore', before, '--target-db', 'signed_by_retired'], both);
    assert.equal(old.code, 0, old.stderr);
    // Removed from the trusted signers: what the retired key signed is untrusted, by design.
    const onlyNew = signingEnv(rotatedKey);
    const refused = await cli(['restore', before, '--target-db', 'retired_removed'], onlyNew);
    assert.equal(refused.code, 4, refused.stderr);
    assert.match(
      refused.stderr,
      new RegExp(`PMS_ERR_UNTRUSTED: backups/${before}/manifest.json is not trusted: it is signed by ${key.fingerprint}`),
    );
    // A signing key its consumers would not accept is a problem keys and doctor report.
    const untrustedSigner = await cli(['keys', '--json'], signingEnv(rotatedKey, [key]));
    assert.equal(untrustedSigner.code, 1);
    assert.match(
      (JSON.parse(untrustedSigner.stdout) as { signingProblems: string[] }).signingProblems.join(' '),
      new RegExp(`signing key ${rotatedKey.fingerprint} is not in BACKUP_TRUSTED_SIGNERS_FILE`),
    );
    const doctor = await cli(['doctor', '--json'], signingEnv(rotatedKey, [key]));
    const line = (JSON.parse(doctor.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string }> }).checks.find(
      (c) => c.name === 'signing keys',
    );
    assert.equal(line?.ok, false);
    assert.match(line?.detail ?? '', /is not in BACKUP_TRUSTED_SIGNERS_FILE/);
  });

  test('a live lock makes create fail with PMS_ERR_LOCKED; a stale lock from a killed process is recovered', async () => {
    const lock = join(repoRoot, 'locks', 'repository.lock');
    (await import('node:fs')).mkdirSync(join(repoRoot, 'locks'), { recursive: true });
    const body = (pid: number) =>
      JSON.stringify({
        token: 't',
        operation: 'prune',
        host: hostname(),
        pid,
        acquiredAt: new Date().toISOString(),
        heartbeatAt: new Date().toISOString(),
      });
    writeFileSync(lock, body(process.pid));
    try {
      const locked = await cli(['create']);
      assert.equal(locked.code, 7);
      assert.match(locked.stderr, /PMS_ERR_LOCKED: the repository is locked by prune/);
      writeFileSync(lock, body(2 ** 22 + 12345));
      const recovered = await cli(['create']);
      assert.equal(recovered.code, 0, recovered.stderr);
      assert.match(recovered.stderr, /removed a stale lock/);
      assert.equal(existsSync(lock), false, 'the lock is released after create');
    } finally {
      rmSync(lock, { force: true });
    }
  });

  test('prune --dry-run deletes nothing; prune with 0 days keeps exactly the newest (verified) backup', async () => {
    await createdId();
    const newest = await createdId();
    assert.equal((await cli(['verify', newest])).code, 0);
    const count = () => readdirSync(join(repoRoot, 'backups')).length;
    const before = count();
    const dry = await cli(['prune', '--dry-run', '--json'], { BACKUP_RETENTION_DAYS: '0' });
    assert.equal(dry.code, 0, dry.stderr);
    assert.ok((JSON.parse(dry.stdout) as { deleted: number }).deleted >= 1);
    assert.equal(count(), before);
    const real = await cli(['prune', '--json'], { BACKUP_RETENTION_DAYS: '0' });
    assert.equal(real.code, 0, real.stderr);
    const list = JSON.parse((await cli(['list', '--json'])).stdout) as Array<{ id: string; status: string }>;
    assert.deepEqual(
      list.filter((r) => r.status === 'complete').map((r) => r.id),
      [newest],
    );
  });

  test('every operation is audited with who, what, when and outcome; an edited or deleted record is detected', async () => {
    const listed = await cli(['audit', '--json']);
    const records = JSON.parse(listed.stdout) as Array<{
      seq: number;
      operation: string;
      outcome: string;
      actor: { user: string; host: string; pod: string | null };
      backupId: string | null;
    }>;
    const operations = new Set(records.map((r) => r.operation));
    for (const op of ['create', 'restore', 'verify', 'prune', 'monitor', 'keys.changed']) assert.ok(operations.has(op), `${op} audited`);
    assert.ok(records.some((r) => r.outcome === 'failure'));
    assert.equal(records[0]?.actor.pod, 'pms-backup-test-pod');
    assert.equal((await cli(['audit', 'verify'])).code, 0);
    const victim = join(repoRoot, 'audit', `${String(3).padStart(12, '0')}.json`);
    const original = readFileSync(victim, 'utf8');
    writeFileSync(
      victim,
      original.replace(/"outcome":"(success|failure)"/, (_m, o: string) => `"outcome":"${o === 'success' ? 'failure' : 'success'}"`),
    );
    const edited = await cli(['audit', 'verify', '--json']);
    assert.notEqual(edited.code, 0);
    assert.equal((JSON.parse(edited.stdout) as { firstBroken: { seq: number } }).firstBroken.seq, 3);
    writeFileSync(victim, original);
    rmSync(join(repoRoot, 'audit', `${String(2).padStart(12, '0')}.json`));
    const deleted = await cli(['audit', 'verify']);
    assert.notEqual(deleted.code, 0);
    assert.match(deleted.stdout, /record 2 .*missing/);
  });

  test('logs are JSON lines in BACKUP_LOG_DIR with the seed names and hold no secrets', () => {
    const files = readdirSync(logDir);
    for (const stream of ['backup', 'monitoring', 'verification'])
      assert.ok(
        files.some((f) => new RegExp(`^${stream}_\\d{8}\\.log$`).test(f)),
        `${stream} log written`,
      );
    const all = files
      .filter((f) => f.endsWith('.log'))
      .map((f) => readFileSync(join(logDir, f), 'utf8'))
      .join('');
    for (const line of all.trim().split('\n')) JSON.parse(line);
    assert.doesNotMatch(all, /ops passphrase|PRIVATE KEY/);
  });

  test('doctor: one line per check; all ok exits 0; a database that is down is a failing line with a fix', async () => {
    const good = await cli(['doctor']);
    assert.equal(good.code, 0, good.stdout);
    assert.match(good.stdout, /ok {3}database/);
    // This server does not archive WAL: a warning with the fix, not a silent "ok", and not a failure.
    assert.match(good.stdout, /^WARN point-in-time recovery archive_mode is off: point-in-time recovery is NOT set up/m);
    assert.match(good.stdout, /^ {5}fix: set archive_mode = on and archive_command = 'pms-backup wal-push %p'/m);
    assert.match(good.stdout, /^ok {3}leftovers/m);
    const bad = await cli(['doctor', '--json'], { POSTGRES_PORT: String(await freePort()) });
    assert.equal(bad.code, 1);
    const report = JSON.parse(bad.stdout) as { checks: Array<{ name: string; ok: boolean; fix?: string }> };
    const database = report.checks.find((c) => c.name === 'database')!;
    assert.equal(database.ok, false);
    assert.match(database.fix ?? '', /POSTGRES_HOST/);
  });
});
