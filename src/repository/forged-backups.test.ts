import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadSigningKey, signDetached } from '../crypto/signing.js';
import { startThrowawayCluster, type ThrowawayCluster } from '../postgres/throwaway-cluster.js';
import { runTool } from '../process/tool-process.js';
import { type GpgKeyPair, generateGpgKeyPair, signingEnv } from '../testing/gpg-keys.js';
import { runCli } from '../testing/run-cli.js';
import { SAMPLE_DATA_SQL, SAMPLE_SCHEMA_SQL } from '../testing/sample-data.js';
import { newBackupId } from './layout.js';

/**
 * The review's forgery, end to end with the real tools: someone who can write to the bucket and
 * holds only public material (the backup public key is public) plants backups of their own.
 */
let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let attacker: GpgKeyPair;
let work: string;
let repoRoot: string;
let env: Record<string, string>;
let genuine: string;
const planted: Record<'forged' | 'future' | 'unsigned' | 'renamed', string> = { forged: '', future: '', unsigned: '', renamed: '' };

interface Row {
  id: string;
  status: string;
  problem?: string;
}

async function cli(args: string[], extra: Record<string, string> = {}) {
  return runCli('pms-backup', args, { ...env, ...extra });
}

function plantCopy(fromRepo: string, fromId: string, toId: string, edit?: (manifest: Record<string, unknown>) => void): void {
  cpSync(join(fromRepo, 'backups', fromId), join(repoRoot, 'backups', toId), { recursive: true });
  const sidecars = join(fromRepo, '.pms-meta', 'backups', fromId);
  if (existsSync(sidecars)) cpSync(sidecars, join(repoRoot, '.pms-meta', 'backups', toId), { recursive: true, force: true });
  if (edit) {
    const file = join(repoRoot, 'backups', toId, 'manifest.json');
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    edit(manifest);
    writeFileSync(file, `${JSON.stringify(manifest, null, 2)}\n`);
  }
}

before(async () => {
  [cluster, key, attacker] = await Promise.all([
    startThrowawayCluster(),
    generateGpgKeyPair({ name: 'PMS Jobs Key', passphrase: 'jobs passphrase' }),
    generateGpgKeyPair({ name: 'Someone Else' }),
  ]);
  await cluster.psql('CREATE DATABASE patient_telemetry');
  await cluster.psql(SAMPLE_SCHEMA_SQL + SAMPLE_DATA_SQL, 'patient_telemetry');
  work = mkdtempSync(join(tmpdir(), 'pms-forgery-'));
  repoRoot = join(work, 'repo');
  const scratch = join(work, 'attacker-repo');
  for (const dir of [repoRoot, scratch]) mkdirSync(dir);
  env = {
    ...cluster.postgresEnv,
    POSTGRES_DB: 'patient_telemetry',
    BACKUP_REPOSITORY: `file://${repoRoot}`,
    ...signingEnv(key),
    BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
    BACKUP_GPG_KEY_ID: key.fingerprint,
    BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile,
    BACKUP_GPG_PASSPHRASE_FILE: key.passphraseFile ?? '',
    BACKUP_LOG_DIR: join(work, 'logs'),
    TMPDIR: work,
  };
  const made = await cli(['create', '--json']);
  assert.equal(made.code, 0, made.stderr);
  genuine = (JSON.parse(made.stdout) as { id: string }).id;

  // The attacker's own backup: a database of theirs, encrypted to our (public) key, signed by them.
  const theirs = await cli(['create', '--json'], { BACKUP_REPOSITORY: `file://${scratch}`, ...signingEnv(attacker) });
  assert.equal(theirs.code, 0, theirs.stderr);
  const forgedId = (JSON.parse(theirs.stdout) as { id: string }).id;
  planted.forged = forgedId;
  plantCopy(scratch, forgedId, forgedId);

  // Alert suppression: a manifest dated 2099, re-signed by the attacker so that it is well-formed.
  planted.future = newBackupId(new Date('2099-01-01T00:00:00Z'));
  plantCopy(scratch, forgedId, planted.future, (m) => {
    m['id'] = planted.future;
    m['startedAt'] = '2099-01-01T00:00:00.000Z';
    m['finishedAt'] = '2099-01-01T00:01:00.000Z';
  });
  const attackerKey = await loadSigningKey(attacker.privateKeyFile, attacker.passphraseFile);
  const futureManifest = `backups/${planted.future}/manifest.json`;
  writeFileSync(
    join(repoRoot, `${futureManifest}.sig`),
    await signDetached(readFileSync(join(repoRoot, futureManifest)), attackerKey, futureManifest),
  );

  // No signature at all (as a backup made before signing would look).
  planted.unsigned = newBackupId(new Date(Date.now() + 60_000));
  plantCopy(scratch, forgedId, planted.unsigned, (m) => {
    m['id'] = planted.unsigned;
  });
  rmSync(join(repoRoot, 'backups', planted.unsigned, 'manifest.json.sig'));

  // A genuine manifest and signature of ours, copied under another backup's name.
  planted.renamed = newBackupId(new Date(Date.now() + 120_000));
  plantCopy(repoRoot, genuine, planted.renamed);
});

after(async () => {
  await cluster?.destroy();
  key?.remove();
  attacker?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('a repository that cannot be forged', () => {
  test('list shows every planted backup as untrusted, with the reason and the signer', async () => {
    const result = await cli(['list', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const rows = JSON.parse(result.stdout) as Row[];
    assert.equal(rows.find((r) => r.id === genuine)?.status, 'complete');
    for (const id of Object.values(planted)) assert.equal(rows.find((r) => r.id === id)?.status, 'untrusted', id);
    assert.match(
      rows.find((r) => r.id === planted.forged)?.problem ?? '',
      new RegExp(`signed by ${attacker.fingerprint}, which is not in BACKUP_TRUSTED_SIGNERS_FILE`),
    );
    assert.match(rows.find((r) => r.id === planted.unsigned)?.problem ?? '', /is not signed/);
    assert.match(rows.find((r) => r.id === planted.renamed)?.problem ?? '', new RegExp(`was made for backups/${genuine}/manifest.json`));
  });

  test('restore latest restores the newest trusted backup; a planted one is refused by id with exit 4 naming object and signer', async () => {
    const latest = await cli(['restore', 'latest', '--target-db', 'latest_restored', '--json']);
    assert.equal(latest.code, 0, latest.stderr);
    assert.equal((JSON.parse(latest.stdout) as { id: string }).id, genuine);
    const forged = await cli(['restore', planted.forged, '--target-db', 'forged_restored']);
    assert.equal(forged.code, 4, forged.stderr);
    assert.match(
      forged.stderr,
      new RegExp(`PMS_ERR_UNTRUSTED: backups/${planted.forged}/manifest.json is not trusted: it is signed by ${attacker.fingerprint}`),
    );
    assert.doesNotMatch(await cluster.psql("SELECT string_agg(datname, ',') FROM pg_database"), /forged_restored/);
  });

  test('--allow-unsigned admits a manifest without any signature but never a bad one: the forged data inside is still refused', async () => {
    const plain = await cli(['restore', planted.unsigned, '--target-db', 'unsigned_restored']);
    assert.equal(plain.code, 4, plain.stderr);
    assert.match(plain.stderr, /is not signed.*--allow-unsigned/);
    const allowed = await cli(['restore', planted.unsigned, '--target-db', 'unsigned_restored', '--allow-unsigned']);
    assert.equal(allowed.code, 4, allowed.stderr);
    assert.match(allowed.stderr, /--allow-unsigned: objects without any signature are accepted/);
    assert.match(
      allowed.stderr,
      new RegExp(`PMS_ERR_UNTRUSTED: .*pms-backup-.*dump.zst.gpg is not trusted: it is signed by ${attacker.fingerprint}`),
    );
    assert.doesNotMatch(await cluster.psql("SELECT string_agg(datname, ',') FROM pg_database"), /unsigned_restored/);
    const forged = await cli(['restore', planted.forged, '--target-db', 'forged_restored', '--allow-unsigned']);
    assert.equal(forged.code, 4, 'a manifest signed by an untrusted key is refused even with --allow-unsigned');
  });

  test('monitor fails its trust check and judges backup age by the trusted backup, not the one dated 2099', async () => {
    const result = await cli(['monitor', '--json']);
    assert.notEqual(result.code, 0);
    const report = JSON.parse(result.stdout) as {
      checks: Array<{ name: string; ok: boolean; detail: string }>;
      facts: Record<string, unknown>;
    };
    const trust = report.checks.find((c) => c.name === 'trust');
    assert.equal(trust?.ok, false);
    assert.match(trust?.detail ?? '', /4 backup\(s\) not signed by a trusted key/);
    assert.match(report.checks.find((c) => c.name === 'backup-age')?.detail ?? '', new RegExp(`newest complete backup ${genuine}`));
    assert.equal(report.facts['untrustedBackups'], 4);
  });

  test('prune keeps planted backups as evidence and never counts them as the newest', async () => {
    const result = await cli(['prune', '--dry-run', '--json'], { BACKUP_RETENTION_DAYS: '0' });
    assert.equal(result.code, 0, result.stderr);
    const decisions = (JSON.parse(result.stdout) as { decisions: Array<{ id: string; action: string; reason: string }> }).decisions;
    for (const id of Object.values(planted)) {
      assert.deepEqual(
        decisions.filter((d) => d.id === id).map((d) => [d.action, d.reason]),
        [['keep', 'untrusted manifest: kept for investigation']],
      );
    }
    assert.equal(decisions.find((d) => d.id === genuine)?.reason, 'newest complete logical backup');
  });

  test('break-glass: gpg --decrypt of a backup object prints a good signature from the jobs key', async () => {
    const manifest = JSON.parse(readFileSync(join(repoRoot, 'backups', genuine, 'manifest.json'), 'utf8')) as {
      objects: Array<{ key: string }>;
    };
    const object = join(repoRoot, manifest.objects[0]!.key);
    const result = await runTool(
      'gpg',
      [
        '--batch',
        '--pinentry-mode',
        'loopback',
        '--passphrase-file',
        key.passphraseFile!,
        '--status-fd',
        '2',
        '--output',
        '/dev/null',
        '--decrypt',
        object,
      ],
      { env: { ...process.env, GNUPGHOME: key.gnupgHome } },
    );
    assert.match(result.stderr, new RegExp(`\\[GNUPG:\\] VALIDSIG ${key.fingerprint}`));
    assert.match(result.stderr, /Good signature from "PMS Jobs Key/);
    const verified = await runTool(
      'gpg',
      [
        '--batch',
        '--status-fd',
        '1',
        '--verify-options',
        'show-notations',
        '--verify',
        join(repoRoot, 'backups', genuine, 'manifest.json.sig'),
        join(repoRoot, 'backups', genuine, 'manifest.json'),
      ],
      {
        env: { ...process.env, GNUPGHOME: key.gnupgHome },
      },
    );
    assert.match(verified.stdout, new RegExp(`VALIDSIG ${key.fingerprint}`));
    assert.match(verified.stderr, new RegExp(`Signature notation: object@pms-data-platform.invalid=backups/${genuine}/manifest.json`));
  });
});
