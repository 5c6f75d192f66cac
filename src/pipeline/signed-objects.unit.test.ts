import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { type DecryptionKeys, type RecipientSet, loadDecryptionKeys, loadRecipients } from '../crypto/keys.js';
import { isPmsError } from '../errors/catalogue.js';
import { MemoryStorage } from '../storage/memory/memory-storage.js';
import { type TestSigning, testSigning } from '../testing/manifest-fixtures.js';
import { readEncrypted } from './open-encrypted.js';
import { storeEncrypted } from './store-encrypted.js';

let dir: string;
let recipients: RecipientSet;
let keys: DecryptionKeys;
let signing: TestSigning;

const PAYLOAD = Buffer.alloc(3 * 1024 * 1024 + 17, 'telemetry ');

async function store(storage: MemoryStorage, key: string, signer = signing.signer): Promise<void> {
  await storeEncrypted({ storage, key, recipients, signer, abort: new AbortController(), source: Readable.from([PAYLOAD]) });
}

function read(storage: MemoryStorage, key: string, allowUnsigned = false) {
  return readEncrypted(
    { storage, key, keys, trust: { ...signing.trust, ...(allowUnsigned ? { allowUnsigned } : {}) }, decompress: false },
    (plaintext) => buffer(plaintext),
  );
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pms-signed-objects-'));
  const key = await openpgp.generateKey({ userIDs: [{ name: 'encryption' }], type: 'curve25519', format: 'armored' });
  writeFileSync(join(dir, 'enc.pub'), key.publicKey);
  writeFileSync(join(dir, 'enc.sec'), key.privateKey, { mode: 0o600 });
  const fingerprint = (await openpgp.readKey({ armoredKey: key.publicKey })).getFingerprint();
  recipients = await loadRecipients(join(dir, 'enc.pub'), fingerprint);
  keys = await loadDecryptionKeys(join(dir, 'enc.sec'), undefined);
  signing = await testSigning();
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe('the one writer signs inside the encryption and the one reader proves it', () => {
  test('an object written by the trusted signer reads back whole, naming its signer', async () => {
    const storage = new MemoryStorage();
    await store(storage, 'backups/a/data.gpg');
    const [plain, facts] = await read(storage, 'backups/a/data.gpg');
    assert.ok(plain.equals(PAYLOAD));
    assert.equal(facts.signer, signing.signer.description.fingerprint);
  });

  test('a genuine object copied under another name is refused as made for its first name', async () => {
    const storage = new MemoryStorage();
    await store(storage, 'wal/00000001/000000010000000000000001.zst.gpg');
    await storage.putBytes(
      'wal/00000001/000000010000000000000002.zst.gpg',
      await storage.getBytes('wal/00000001/000000010000000000000001.zst.gpg'),
    );
    await assert.rejects(
      read(storage, 'wal/00000001/000000010000000000000002.zst.gpg'),
      (error: unknown) =>
        isPmsError(error, 'PMS_ERR_UNTRUSTED') && /was made for wal\/00000001\/000000010000000000000001/.test(error.message),
    );
  });

  test("an object signed by a stranger's key is refused naming that key, also with allowUnsigned", async () => {
    const storage = new MemoryStorage();
    await store(storage, 'backups/a/data.gpg', signing.stranger);
    for (const allowUnsigned of [false, true]) {
      await assert.rejects(
        read(storage, 'backups/a/data.gpg', allowUnsigned),
        (error: unknown) =>
          isPmsError(error, 'PMS_ERR_UNTRUSTED') && error.message.includes(`signed by ${signing.stranger.description.fingerprint}`),
      );
    }
  });

  test('one flipped byte is refused (integrity or signature), never read as good', async () => {
    const storage = new MemoryStorage();
    await store(storage, 'backups/a/data.gpg');
    const bytes = await storage.getBytes('backups/a/data.gpg');
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await storage.delete('backups/a/data.gpg');
    await storage.putBytes('backups/a/data.gpg', bytes);
    await assert.rejects(
      read(storage, 'backups/a/data.gpg'),
      (error: unknown) => isPmsError(error, 'PMS_ERR_INTEGRITY') || isPmsError(error, 'PMS_ERR_UNTRUSTED'),
    );
  });
});
