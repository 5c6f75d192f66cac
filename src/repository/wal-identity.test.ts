import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type SigningKey, type TrustedSigners, loadSigningKey, loadTrustedSigners, signDetached } from '../crypto/signing.js';
import { isPmsError } from '../errors/catalogue.js';
import { FsStorage } from '../storage/fs/fs-storage.js';
import { type GpgKeyPair, generateGpgKeyPair } from '../testing/gpg-keys.js';
import { signatureKey } from './signed-record.js';
import { claimArchive, identityRecordBody, readArchiveIdentity } from './wal-identity.js';
import { WAL_SYSTEM_KEY } from './wal-layout.js';

const SYSTEM = '7000000000000000001';
let key: GpgKeyPair;
let signer: SigningKey;
let trusted: TrustedSigners;
const root = mkdtempSync(join(tmpdir(), 'pms-wal-identity-'));
let n = 0;

function freshRepository(): string {
  n += 1;
  const dir = join(root, `repo-${n}`);
  mkdirSync(dir, { mode: 0o700 });
  return dir;
}

before(async () => {
  key = await generateGpgKeyPair({ name: 'PMS WAL identity test' });
  signer = await loadSigningKey(key.privateKeyFile, key.passphraseFile);
  trusted = await loadTrustedSigners(key.publicKeyFile);
});

after(() => {
  key?.remove();
  rmSync(root, { recursive: true, force: true });
});

describe('wal/system.json claimed by two writers at once', () => {
  test('pushes of one system racing for the first claim on a fresh repository all succeed (each its own storage client)', async () => {
    const dir = freshRepository();
    await Promise.all(Array.from({ length: 4 }, () => claimArchive(new FsStorage(dir), SYSTEM, signer, { trusted })));
    assert.equal(await readArchiveIdentity(new FsStorage(dir), { trusted }), SYSTEM);
  });

  test('the loser waits for the record of a winner that is between its signature and its record', async () => {
    const dir = freshRepository();
    const storage = new FsStorage(dir);
    const body = identityRecordBody(SYSTEM);
    // The winner's first write: its signature; its record comes once our claim is waiting.
    await storage.putBytes(signatureKey(WAL_SYSTEM_KEY), await signDetached(Buffer.from(body), signer, WAL_SYSTEM_KEY), { ifAbsent: true });
    let settled = false;
    const loser = claimArchive(new FsStorage(dir), SYSTEM, signer, { trusted }).finally(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(settled, false, 'the claim waits instead of calling the gap a foreign archive');
    await storage.putBytes(WAL_SYSTEM_KEY, body, { ifAbsent: true });
    await loser;
  });

  test("a winner of another system is still refused, naming that system (not '(unknown)')", async () => {
    const dir = freshRepository();
    const storage = new FsStorage(dir);
    const body = identityRecordBody('7000000000000000999');
    await storage.putBytes(signatureKey(WAL_SYSTEM_KEY), await signDetached(Buffer.from(body), signer, WAL_SYSTEM_KEY), { ifAbsent: true });
    const loser = claimArchive(new FsStorage(dir), SYSTEM, signer, { trusted });
    loser.catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await storage.putBytes(WAL_SYSTEM_KEY, body, { ifAbsent: true });
    await assert.rejects(loser, (error: unknown) => {
      assert.ok(isPmsError(error, 'PMS_ERR_SYSTEM_MISMATCH'), String(error));
      assert.match((error as Error).message, /belongs to PostgreSQL system 7000000000000000999/);
      return true;
    });
  });

  test('a signature whose record never comes (a writer that died between its two writes): PMS_ERR_LOCKED after the wait, nothing written', async () => {
    const dir = freshRepository();
    const storage = new FsStorage(dir);
    const body = identityRecordBody(SYSTEM);
    await storage.putBytes(signatureKey(WAL_SYSTEM_KEY), await signDetached(Buffer.from(body), signer, WAL_SYSTEM_KEY), { ifAbsent: true });
    await assert.rejects(claimArchive(new FsStorage(dir), SYSTEM, signer, { trusted }), (error: unknown) => {
      assert.ok(isPmsError(error, 'PMS_ERR_LOCKED'), String(error));
      assert.match((error as Error).message, /another writer is claiming wal\/system\.json/);
      return true;
    });
    assert.equal(await storage.head(WAL_SYSTEM_KEY), undefined, 'no record was written over the gap');
  });
});
