import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { RepositoryConfig } from '../config/config.js';
import { WAL_OBJECT_METADATA } from '../repository/wal-object-signature.js';
import { cosignatureKey } from '../repository/signed-record.js';
import { openStorage } from '../storage/open-storage.js';
import type { Storage } from '../storage/storage.js';
import { type GpgKeyPair, generateGpgKeyPair, trustedFile } from '../testing/gpg-keys.js';
import { runCli } from '../testing/run-cli.js';
import { type S3rverHarness, startS3rver } from '../testing/s3rver-harness.js';
import { segmentName } from './wal-file-name.js';

/**
 * WAL that a consumer without the decryption key (copy, monitor) can tell from a planted object:
 * real segments archived by the real `wal-push`, attackers' objects made by the same program with
 * the public key and a key of their own, on the file driver and on s3rver.
 */

const SYSTEM_ID = 7_311_234_567_890_123_456n;
const SEGMENT_BYTES = 16 * 1024 * 1024;

let work: string;
let jobs: GpgKeyPair;
let walKey: GpgKeyPair;
let attacker: GpgKeyPair;
let s3: S3rverHarness;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'pms-sealed-wal-'));
  [jobs, walKey, attacker, s3] = await Promise.all([
    generateGpgKeyPair({ name: 'PMS Jobs' }),
    generateGpgKeyPair({ name: 'PMS WAL' }),
    generateGpgKeyPair({ name: 'Not Ours' }),
    startS3rver({ bucket: 'pms-sealed-wal' }),
  ]);
});

after(async () => {
  await s3?.destroy();
  for (const key of [jobs, walKey, attacker]) key?.remove();
  rmSync(work, { recursive: true, force: true });
});

/** A 16 MiB segment with a PostgreSQL 15 long page header of our system: what wal-push checks. */
function writeSegment(dir: string, timeline: number, segment: number): string {
  const name = segmentName(timeline, segment);
  const bytes = Buffer.alloc(SEGMENT_BYTES);
  bytes.writeUInt16LE(0xd110, 0);
  bytes.writeUInt16LE(0x0002, 2);
  bytes.writeUInt32LE(timeline, 4);
  bytes.writeBigUInt64LE(BigInt(segment) * BigInt(SEGMENT_BYTES), 8);
  bytes.writeBigUInt64LE(SYSTEM_ID, 24);
  bytes.writeUInt32LE(SEGMENT_BYTES, 32);
  bytes.writeUInt32LE(8192, 36);
  bytes.write(`segment ${name}`, 8192);
  mkdirSync(join(dir, 'pg_wal'), { recursive: true });
  writeFileSync(join(dir, 'pg_wal', name), bytes);
  return name;
}

const walKeyOf = (segment: number): string => `wal/00000001/${segmentName(1, segment)}.zst.gpg`;

interface Side {
  readonly env: Record<string, string>;
  readonly config: RepositoryConfig;
}

function fileSide(name: string): Side {
  const root = join(work, name);
  mkdirSync(root, { recursive: true });
  return {
    env: { BACKUP_REPOSITORY: `file://${root}` },
    config: { kind: 'file', url: `file://${root}`, root },
  };
}

function s3Side(prefix: string): Side {
  return { env: s3.env(prefix), config: s3.repository(prefix) };
}

async function withStorage<T>(side: Side, use: (storage: Storage) => Promise<T>): Promise<T> {
  const storage = openStorage(side.config);
  try {
    return await use(storage);
  } finally {
    await storage.close();
  }
}

/** What every command of ours shares: the jobs key encrypts, both keys are trusted, the WAL key only under wal/. */
function baseEnv(side: Side): Record<string, string> {
  return {
    ...side.env,
    BACKUP_GPG_PUBLIC_KEY_FILE: jobs.publicKeyFile,
    BACKUP_GPG_KEY_ID: jobs.fingerprint,
    BACKUP_TRUSTED_SIGNERS_FILE: trustedFile([jobs, walKey]),
    BACKUP_WAL_SIGNER_FINGERPRINTS: walKey.fingerprint,
    BACKUP_LOG_DIR: join(work, 'logs'),
  };
}

/** The database server: wal-push signs with the WAL key. */
async function walPush(side: Side, dir: string, name: string, signer = walKey, extra: Record<string, string> = {}): Promise<void> {
  const result = await runCli(
    'pms-backup',
    ['wal-push', `pg_wal/${name}`],
    { ...baseEnv(side), BACKUP_SIGNING_KEY_FILE: signer.privateKeyFile, ...extra },
    { cwd: dir },
  );
  assert.equal(result.code, 0, result.stderr);
}

/** The attacker: the real wal-push, the public backup key, their own signing key, their own scratch repository. */
async function forge(segment: number): Promise<{ bytes: Buffer; metadata: Record<string, string> }> {
  const dir = join(work, `attacker-${segment}-${Math.random().toString(36).slice(2)}`);
  const scratch = fileSide(`${dir.split('/').pop()}-repo`);
  const name = writeSegment(dir, 1, segment);
  await walPush(scratch, dir, name, attacker, {
    BACKUP_TRUSTED_SIGNERS_FILE: attacker.publicKeyFile,
    BACKUP_WAL_SIGNER_FINGERPRINTS: attacker.fingerprint,
  });
  return withStorage(scratch, async (storage) => ({
    bytes: await storage.getBytes(walKeyOf(segment)),
    metadata: { ...(await storage.head(walKeyOf(segment)))!.metadata },
  }));
}

function withoutSeal(metadata: Record<string, string>): Record<string, string> {
  const { [WAL_OBJECT_METADATA.signature]: _sig, [WAL_OBJECT_METADATA.storedSha256]: _sha, ...rest } = metadata;
  return rest;
}

async function plant(side: Side, key: string, object: { bytes: Buffer; metadata: Record<string, string> }): Promise<void> {
  await withStorage(side, (storage) => storage.putBytes(key, object.bytes, { metadata: object.metadata }));
}

async function genuine(side: Side, segment: number): Promise<{ bytes: Buffer; metadata: Record<string, string> }> {
  return withStorage(side, async (storage) => ({
    bytes: await storage.getBytes(walKeyOf(segment)),
    metadata: { ...(await storage.head(walKeyOf(segment)))!.metadata },
  }));
}

interface MonitorJson {
  checks: { name: string; ok: boolean; detail: string }[];
  facts: { untrustedWal?: number };
}

async function monitor(side: Side, maxAgeMinutes: string): Promise<MonitorJson> {
  const result = await runCli('pms-backup', ['monitor', '--json'], {
    ...baseEnv(side),
    BACKUP_SIGNING_KEY_FILE: jobs.privateKeyFile,
    BACKUP_WAL_MAX_AGE_MINUTES: maxAgeMinutes,
  });
  assert.ok(result.code === 0 || result.code === 1, result.stderr);
  return JSON.parse(result.stdout) as MonitorJson;
}

const check = (report: MonitorJson, name: string) => {
  const found = report.checks.find((c) => c.name === name);
  assert.ok(found, `monitor has a ${name} check: ${JSON.stringify(report.checks.map((c) => c.name))}`);
  return found;
};

interface CopyJson {
  walCopied: number;
  walRefused: { key: string; reason: string }[];
  walLegacyCopied: number;
}

async function copy(from: Side, to: Side): Promise<{ code: number | null; json: CopyJson; stdout: string; stderr: string }> {
  const drUrl = to.env['BACKUP_REPOSITORY']!;
  const drEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(to.env)) {
    if (name === 'BACKUP_REPOSITORY') continue;
    drEnv[name.startsWith('AWS_') ? `BACKUP_DR_${name}` : name.startsWith('S3_') ? `BACKUP_DR_${name}` : name] = value;
  }
  const result = await runCli('pms-backup', ['copy', '--to', drUrl, '--json'], {
    ...drEnv,
    ...baseEnv(from),
    BACKUP_SIGNING_KEY_FILE: jobs.privateKeyFile,
  });
  return { code: result.code, json: JSON.parse(result.stdout) as CopyJson, stdout: result.stdout, stderr: result.stderr };
}

for (const kind of ['file', 's3'] as const) {
  describe(`sealed WAL, primary on ${kind === 'file' ? 'the file driver' : 's3rver'}, DR on ${kind === 'file' ? 's3rver' : 'the file driver'}`, () => {
    const primary = (): Side => (kind === 'file' ? fileSide(`primary-${kind}`) : s3Side(`primary-${kind}`));
    const dr = (): Side => (kind === 'file' ? s3Side(`dr-${kind}`) : fileSide(`dr-${kind}`));
    const server = () => join(work, `server-${kind}`);
    let pushedAt = 0;

    before(async () => {
      for (const segment of [1, 2]) await walPush(primary(), server(), writeSegment(server(), 1, segment));
      pushedAt = Date.now();
      // Planted: a segment sealed by the attacker's key, one without any seal, and a genuine
      // segment's object with its seal under another name. All three are higher than ours.
      const forged = await forge(3);
      await plant(primary(), walKeyOf(3), forged);
      await plant(primary(), walKeyOf(4), { bytes: (await forge(4)).bytes, metadata: withoutSeal(forged.metadata) });
      await plant(primary(), walKeyOf(5), await genuine(primary(), 2));
    });

    test('wal-push seals each object in its own metadata: the stored bytes sha256 and a compact signature that fits S3 metadata', async () => {
      const { bytes, metadata } = await genuine(primary(), 1);
      const { createHash } = await import('node:crypto');
      assert.equal(metadata[WAL_OBJECT_METADATA.storedSha256], createHash('sha256').update(bytes).digest('hex'));
      assert.match(metadata[WAL_OBJECT_METADATA.signature] ?? '', /^[A-Za-z0-9+/]+=*$/);
      const size = Object.entries(metadata).reduce((sum, [k, v]) => sum + k.length + v.length, 0);
      assert.ok(size < 2048, `metadata is ${size} bytes`);
    });

    test('copy carries the genuine segments (sealed in DR too) and refuses the planted ones, naming each; the run exits 4', async () => {
      const result = await copy(primary(), dr());
      assert.equal(result.code, 4, result.stderr);
      assert.deepEqual(result.json.walRefused.map((r) => r.key).sort(), [walKeyOf(3), walKeyOf(4), walKeyOf(5)]);
      const reasons = Object.fromEntries(result.json.walRefused.map((r) => [r.key, r.reason]));
      assert.match(reasons[walKeyOf(3)]!, new RegExp(`signed by ${attacker.fingerprint}, which is not in BACKUP_TRUSTED_SIGNERS_FILE`));
      assert.match(reasons[walKeyOf(4)]!, /no sealed signature but was stored after wal-push began sealing/);
      // The sealed statement names the key: under another name it is another statement.
      assert.match(reasons[walKeyOf(5)]!, new RegExp(`its signature by ${walKey.fingerprint} does not verify`));
      await withStorage(dr(), async (storage) => {
        for (const segment of [1, 2]) {
          const info = await storage.head(walKeyOf(segment));
          assert.ok(info?.metadata[WAL_OBJECT_METADATA.signature], `${walKeyOf(segment)} in DR with its seal`);
        }
        for (const segment of [3, 4, 5]) assert.equal(await storage.head(walKeyOf(segment)), undefined, `${walKeyOf(segment)} not in DR`);
      });
      const again = await copy(primary(), dr());
      assert.equal(again.json.walCopied, 0, 'a re-run copies nothing new');
      assert.equal(again.json.walRefused.length, 3, 'and still reports the planted ones');
    });

    test('monitor counts the planted WAL as untrusted and judges WAL age by the newest sealed segment only', async () => {
      const fresh = await monitor(primary(), '60');
      assert.equal(check(fresh, 'wal-trust').ok, false);
      assert.equal(fresh.facts.untrustedWal, 3);
      const age = check(fresh, 'wal-age');
      assert.equal(age.ok, true, age.detail);
      assert.match(age.detail, new RegExp(segmentName(1, 2)));
      // Our newest segment is older than the limit: the fresher planted ones must not hide that.
      await sleep(Math.max(0, pushedAt + 4000 - Date.now()));
      const stale = await monitor(primary(), '0.05');
      assert.equal(check(stale, 'wal-age').ok, false, check(stale, 'wal-age').detail);
    });

    test('an archive holding only planted WAL never passes the WAL-age check, sealed by a stranger or not sealed at all', async () => {
      const onlyForged = kind === 'file' ? fileSide(`only-forged-${kind}`) : s3Side(`only-forged-${kind}`);
      const forged = await forge(7);
      await plant(onlyForged, walKeyOf(7), forged);
      await plant(onlyForged, walKeyOf(8), { bytes: forged.bytes, metadata: withoutSeal(forged.metadata) });
      const report = await monitor(onlyForged, '60');
      assert.equal(check(report, 'wal-age').ok, false, check(report, 'wal-age').detail);
      assert.match(check(report, 'wal-age').detail, /no WAL segment sealed by a trusted key/);
      assert.equal(check(report, 'wal-trust').ok, false);
      assert.equal(report.facts.untrustedWal, 1, 'the stranger-sealed one; the unsigned one cannot be told from pre-sealing WAL here');
      assert.match(check(report, 'wal-trust').detail, /1 WAL file\(s\) archived before wal-push sealed WAL/);
    });

    test('WAL archived before sealing (unsigned, older than the first sealed object) is copied with a warning, never counted as fresh, and still restores', async () => {
      const legacyRepo = kind === 'file' ? fileSide(`legacy-${kind}`) : s3Side(`legacy-${kind}`);
      const legacyDr = kind === 'file' ? s3Side(`legacy-dr-${kind}`) : fileSide(`legacy-dr-${kind}`);
      const old = await genuine(primary(), 1);
      await plant(legacyRepo, walKeyOf(1), { bytes: old.bytes, metadata: withoutSeal(old.metadata) });
      await sleep(1100); // S3 keeps times to the second: the upgrade comes strictly later
      const dir = join(work, `legacy-server-${kind}`);
      await walPush(legacyRepo, dir, writeSegment(dir, 1, 2));
      const result = await copy(legacyRepo, legacyDr);
      assert.equal(result.code, 0, result.stderr + result.stdout);
      assert.equal(result.json.walLegacyCopied, 1);
      assert.deepEqual(result.json.walRefused, []);
      const report = await monitor(legacyRepo, '60');
      assert.equal(check(report, 'wal-trust').ok, true, check(report, 'wal-trust').detail);
      assert.match(check(report, 'wal-trust').detail, /1 WAL file\(s\) archived before wal-push sealed WAL carry no sealed signature/);
      assert.match(check(report, 'wal-age').detail, new RegExp(segmentName(1, 2)));
      // wal-fetch proves it by the signature inside the encryption, as before.
      const fetchDir = join(work, `legacy-fetch-${kind}`);
      mkdirSync(join(fetchDir, 'global'), { recursive: true });
      mkdirSync(join(fetchDir, 'pg_wal'), { recursive: true });
      const control = Buffer.alloc(8);
      control.writeBigUInt64LE(SYSTEM_ID, 0);
      writeFileSync(join(fetchDir, 'global', 'pg_control'), control);
      const fetched = await runCli(
        'pms-backup',
        ['wal-fetch', segmentName(1, 1), 'pg_wal/RECOVERYXLOG'],
        // No prefetcher: a detached one would still be writing its spool when after() removes the directory.
        { ...baseEnv(legacyDr), BACKUP_GPG_PRIVATE_KEY_FILE: jobs.privateKeyFile, BACKUP_WAL_PREFETCH: '0' },
        { cwd: fetchDir },
      );
      assert.equal(fetched.code, 0, fetched.stderr);
      assert.deepEqual(readFileSync(join(fetchDir, 'pg_wal', 'RECOVERYXLOG')), readFileSync(join(server(), 'pg_wal', segmentName(1, 1))));
    });
  });
}

describe('rotating the WAL signing key keeps wal/system.json proved', () => {
  test('wal-push with the new key co-signs wal/system.json while the old key is trusted; after the old key is retired the archive is still claimed', async () => {
    const repo = fileSide('rotation');
    const newWal = await generateGpgKeyPair({ name: 'PMS WAL 2' });
    const unrotated = fileSide('rotation-unrotated');
    try {
      const dir = join(work, 'rotation-server');
      const bothTrusted = {
        BACKUP_TRUSTED_SIGNERS_FILE: trustedFile([jobs, walKey, newWal]),
        BACKUP_WAL_SIGNER_FINGERPRINTS: `${walKey.fingerprint},${newWal.fingerprint}`,
      };
      const onlyNew = {
        BACKUP_TRUSTED_SIGNERS_FILE: trustedFile([jobs, newWal]),
        BACKUP_WAL_SIGNER_FINGERPRINTS: newWal.fingerprint,
      };
      await walPush(repo, dir, writeSegment(dir, 1, 1));
      await walPush(unrotated, dir, segmentName(1, 1));
      // Step 1 of the rotation: both WAL keys trusted, the server signs with the new one.
      await walPush(repo, dir, writeSegment(dir, 1, 2), newWal, bothTrusted);
      const cosignature = join(work, 'rotation', cosignatureKey('wal/system.json', newWal.fingerprint));
      assert.match(readFileSync(cosignature, 'utf8'), /BEGIN PGP SIGNATURE/);
      // Step 2: the old key is retired from the trusted file.
      await walPush(repo, dir, writeSegment(dir, 1, 3), newWal, onlyNew);
      // Without the co-signature the retired key's claim is refused (what the re-sign prevents).
      const refused = await runCli(
        'pms-backup',
        ['wal-push', `pg_wal/${segmentName(1, 3)}`],
        { ...baseEnv(unrotated), BACKUP_SIGNING_KEY_FILE: newWal.privateKeyFile, ...onlyNew },
        { cwd: dir },
      );
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, new RegExp(`wal/system.json is not trusted: it is signed by ${walKey.fingerprint}`));
      // A genuine co-signature of another archive's wal/system.json, planted here, proves nothing.
      writeFileSync(join(work, 'rotation-unrotated', cosignatureKey('wal/system.json', newWal.fingerprint)), readFileSync(cosignature));
      const stillRefused = await runCli(
        'pms-backup',
        ['wal-push', `pg_wal/${segmentName(1, 3)}`],
        { ...baseEnv(unrotated), BACKUP_SIGNING_KEY_FILE: newWal.privateKeyFile, ...onlyNew },
        { cwd: dir },
      );
      assert.notEqual(stillRefused.code, 0);
      assert.match(stillRefused.stderr, /PMS_ERR_UNTRUSTED/);
    } finally {
      newWal.remove();
    }
  });
});

describe('monitor warns on expiring signing keys', () => {
  test('a jobs key expiring within BACKUP_KEY_EXPIRY_WARN_DAYS fails the signing-keys check; the WAL key in use is named; an expired retired signer is no problem', async () => {
    const soon = await generateGpgKeyPair({ name: 'PMS Jobs Expiring', expire: '10d' });
    const retired = await generateGpgKeyPair({ name: 'PMS Retired', createdAt: new Date(Date.now() - 400 * 86_400_000), expire: '30d' });
    try {
      const repo = fileSide('signing-expiry');
      const dir = join(work, 'signing-expiry-server');
      await walPush(repo, dir, writeSegment(dir, 1, 1));
      const run = async (signer: GpgKeyPair) => {
        const result = await runCli('pms-backup', ['monitor', '--json'], {
          ...baseEnv(repo),
          BACKUP_TRUSTED_SIGNERS_FILE: trustedFile([jobs, walKey, soon, retired]),
          BACKUP_SIGNING_KEY_FILE: signer.privateKeyFile,
          BACKUP_KEY_EXPIRY_WARN_DAYS: '30',
        });
        return JSON.parse(result.stdout) as MonitorJson & {
          facts: { signingKeys: { fingerprint: string; role: string; expiresAt: string | null }[] };
        };
      };
      const expiring = await run(soon);
      const failed = check(expiring, 'signing-keys');
      assert.equal(failed.ok, false);
      assert.match(failed.detail, new RegExp(`signing key ${soon.fingerprint} expires on`));
      assert.doesNotMatch(failed.detail, new RegExp(retired.fingerprint), 'a retired signer that expired is not a problem');
      const roles = Object.fromEntries(expiring.facts.signingKeys.map((k) => [k.fingerprint, k.role]));
      assert.deepEqual(roles, {
        [soon.fingerprint]: 'signing',
        [walKey.fingerprint]: 'wal',
        [jobs.fingerprint]: 'trusted',
        [retired.fingerprint]: 'trusted',
      });
      const healthy = await run(jobs);
      assert.equal(check(healthy, 'signing-keys').ok, false, 'the trusted signer expiring in 10 days is still worth a warning');
      assert.match(check(healthy, 'signing-keys').detail, new RegExp(`trusted signer ${soon.fingerprint} expires on`));
    } finally {
      soon.remove();
      retired.remove();
    }
  });
});
