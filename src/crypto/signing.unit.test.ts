import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { isPmsError } from '../errors/catalogue.js';
import { type SigningKey, type TrustedSigners, loadSigningKey, loadTrustedSigners, signDetached, verifyDetached } from './signing.js';

const untrusted = (pattern: RegExp) => (error: unknown) => isPmsError(error, 'PMS_ERR_UNTRUSTED') && pattern.test(error.message);

describe('detached signatures bound to an object name', () => {
  let dir: string;
  let signer: SigningKey;
  let stranger: SigningKey;
  let trusted: TrustedSigners;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pms-signing-'));
    const make = async (name: string, passphrase?: string) => {
      const key = await openpgp.generateKey({
        userIDs: [{ name }],
        type: 'curve25519',
        format: 'armored',
        ...(passphrase ? { passphrase } : {}),
      });
      writeFileSync(join(dir, `${name}.sec`), key.privateKey, { mode: 0o600 });
      writeFileSync(join(dir, `${name}.pub`), key.publicKey);
      if (passphrase) writeFileSync(join(dir, `${name}.pass`), `${passphrase}\n`, { mode: 0o600 });
    };
    await make('jobs', 'correct horse');
    await make('stranger');
    signer = await loadSigningKey(join(dir, 'jobs.sec'), join(dir, 'jobs.pass'));
    stranger = await loadSigningKey(join(dir, 'stranger.sec'), undefined);
    trusted = await loadTrustedSigners(join(dir, 'jobs.pub'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a record signed for its name verifies and names the signer', async () => {
    const bytes = Buffer.from('{"id":"a"}\n');
    const signature = await signDetached(bytes, signer, 'backups/a/manifest.json');
    const facts = await verifyDetached(bytes, signature, trusted, 'backups/a/manifest.json');
    assert.equal(facts.signer, signer.description.fingerprint);
    assert.equal(facts.object, 'backups/a/manifest.json');
  });

  test('one changed byte, another name, or another signer is refused', async () => {
    const bytes = Buffer.from('{"id":"a"}\n');
    const signature = await signDetached(bytes, signer, 'backups/a/manifest.json');
    await assert.rejects(
      verifyDetached(Buffer.from('{"id":"b"}\n'), signature, trusted, 'backups/a/manifest.json'),
      untrusted(/does not verify/),
    );
    await assert.rejects(
      verifyDetached(bytes, signature, trusted, 'backups/b/manifest.json'),
      untrusted(/made for backups\/a\/manifest.json/),
    );
    const forged = await signDetached(bytes, stranger, 'backups/a/manifest.json');
    await assert.rejects(
      verifyDetached(bytes, forged, trusted, 'backups/a/manifest.json'),
      (error: unknown) =>
        untrusted(/not in BACKUP_TRUSTED_SIGNERS_FILE/)(error) &&
        (error as { details?: { signer?: string } }).details?.signer === stranger.description.fingerprint,
    );
    await assert.rejects(verifyDetached(bytes, 'not a signature', trusted, 'backups/a/manifest.json'), untrusted(/not a readable/));
  });

  test('a WAL-only signer (BACKUP_WAL_SIGNER_FINGERPRINTS) is accepted under wal/ and refused for anything else', async () => {
    writeFileSync(join(dir, 'both.pub'), readFileSync(join(dir, 'jobs.pub'), 'utf8') + readFileSync(join(dir, 'stranger.pub'), 'utf8'));
    const both = await loadTrustedSigners(join(dir, 'both.pub'), new Date(), [stranger.description.fingerprint]);
    const bytes = Buffer.from('{"formatVersion":1}\n');
    const wal = await signDetached(bytes, stranger, 'wal/system.json');
    assert.equal((await verifyDetached(bytes, wal, both, 'wal/system.json')).signer, stranger.description.fingerprint);
    const manifest = await signDetached(bytes, stranger, 'backups/a/manifest.json');
    await assert.rejects(
      verifyDetached(bytes, manifest, both, 'backups/a/manifest.json'),
      untrusted(/a WAL signing key .* may sign only wal\/ objects/),
    );
    const jobs = await signDetached(bytes, signer, 'backups/a/manifest.json');
    assert.equal((await verifyDetached(bytes, jobs, both, 'backups/a/manifest.json')).signer, signer.description.fingerprint);
    await assert.rejects(
      loadTrustedSigners(join(dir, 'jobs.pub'), new Date(), [stranger.description.fingerprint]),
      (e: unknown) => isPmsError(e, 'PMS_ERR_KEY') && /not in BACKUP_TRUSTED_SIGNERS_FILE/.test(e.message),
    );
  });

  test('a wrong passphrase, a missing one and a secret key among the trusted signers are key errors', async () => {
    writeFileSync(join(dir, 'wrong.pass'), 'nope\n');
    await assert.rejects(loadSigningKey(join(dir, 'jobs.sec'), join(dir, 'wrong.pass')), (e: unknown) => isPmsError(e, 'PMS_ERR_KEY'));
    await assert.rejects(
      loadSigningKey(join(dir, 'jobs.sec'), undefined),
      (e: unknown) => isPmsError(e, 'PMS_ERR_KEY') && /passphrase-protected/.test(e.message),
    );
    await assert.rejects(
      loadTrustedSigners(join(dir, 'stranger.sec')),
      (e: unknown) => isPmsError(e, 'PMS_ERR_KEY') && /secret key/.test(e.message),
    );
  });
});
