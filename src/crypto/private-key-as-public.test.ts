import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { type ThrowawayCluster, startThrowawayCluster } from '../postgres/throwaway-cluster.js';
import { type ArchiveFixture, createArchiveFixture } from '../testing/archive-fixture.js';
import { runCli } from '../testing/run-cli.js';

/**
 * A private key mounted where a public key belongs (issue 14 item 4): openpgp reads the public
 * half out of it, so create, doctor and keys used to say ok while the decryption key sat in the
 * backup job. Each now refuses it with exit 5, naming the file and the fingerprint.
 */
let fixture: ArchiveFixture;
let source: ThrowawayCluster;

before(async () => {
  fixture = await createArchiveFixture('privpub');
  source = await startThrowawayCluster();
});

after(async () => {
  await source?.destroy();
  fixture?.remove();
});

const message = (file: string, fingerprint: string) =>
  new RegExp(`BACKUP_GPG_PUBLIC_KEY_FILE: ${file.replace(/[.]/g, '\\.')} holds a private key \\(${fingerprint}\\), not only public keys`);

describe('a private key in the public key file is refused', () => {
  test('create exits 5 before anything is written to the repository', async () => {
    const env = { ...source.postgresEnv, ...fixture.env, BACKUP_GPG_PUBLIC_KEY_FILE: fixture.key.privateKeyFile };
    const result = await runCli('pms-backup', ['create'], env);
    assert.equal(result.code, 5, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stderr, message(fixture.key.privateKeyFile, fixture.key.fingerprint));
    assert.deepEqual(
      readdirSync(fixture.repoRoot, { recursive: true })
        .map(String)
        .filter((f) => f.startsWith('backups/')),
      [],
    );
  });

  test('keys exits 5 with the reason', async () => {
    const result = await runCli('pms-backup', ['keys'], { ...fixture.env, BACKUP_GPG_PUBLIC_KEY_FILE: fixture.key.privateKeyFile });
    assert.equal(result.code, 5, result.stderr);
    assert.match(result.stderr, /PMS_ERR_KEY: /);
    assert.match(result.stderr, message(fixture.key.privateKeyFile, fixture.key.fingerprint));
  });

  test("doctor's public keys check fails with the reason", async () => {
    const env = { ...source.postgresEnv, ...fixture.env, BACKUP_GPG_PUBLIC_KEY_FILE: fixture.key.privateKeyFile };
    const result = await runCli('pms-backup', ['doctor', '--json'], env);
    assert.notEqual(result.code, 0);
    const report = JSON.parse(result.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string }> };
    const check = report.checks.find((c) => c.name === 'public keys');
    assert.equal(check?.ok, false, result.stdout);
    assert.match(check?.detail ?? '', message(fixture.key.privateKeyFile, fixture.key.fingerprint));
  });

  test('a private key as the trusted signers file is refused by what it is, not by its armor line', async () => {
    const result = await runCli('pms-backup', ['list'], { ...fixture.env, BACKUP_TRUSTED_SIGNERS_FILE: fixture.key.privateKeyFile });
    assert.equal(result.code, 5, result.stderr);
    assert.match(result.stderr, /BACKUP_TRUSTED_SIGNERS_FILE: .* holds a (private|secret) key/);
  });
});
