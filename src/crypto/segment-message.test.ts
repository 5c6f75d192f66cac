import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isPmsError } from '../errors/catalogue.js';
import { runTool } from '../process/tool-process.js';
import { type GpgKeyPair, generateGpgKeyPair } from '../testing/gpg-keys.js';
import { loadDecryptionKeys, loadRecipients } from './keys.js';
import { OBJECT_NOTATION, loadSigningKey, loadTrustedSigners } from './signing.js';
import { decryptBytes, encryptBytes } from './stream-cipher.js';

/**
 * The break-glass promise for WAL segments written by encryptBytes' node:crypto path: the real
 * gpg (2.2 on Debian 12) decrypts them, checks the MDC and prints a good signature from the
 * signer; and decryptBytes reads what gpg makes (`gpg --sign --encrypt`, compressed or not).
 */

const NAME = 'wal/00000001/000000010000000000000042.zst.gpg';
let work: string;
const pairs = new Map<string, GpgKeyPair>();

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'pms-segment-gpg-'));
  pairs.set('ed25519', await generateGpgKeyPair({ name: 'PMS Segment Ed' }));
  pairs.set('rsa2048', await generateGpgKeyPair({ name: 'PMS Segment RSA', algorithm: 'rsa2048' }));
});

after(() => {
  for (const pair of pairs.values()) pair.remove();
  rmSync(work, { recursive: true, force: true });
});

async function material(pair: GpgKeyPair) {
  return {
    recipients: await loadRecipients(pair.publicKeyFile, pair.fingerprint),
    keys: await loadDecryptionKeys(pair.privateKeyFile, pair.passphraseFile),
    signer: await loadSigningKey(pair.privateKeyFile, pair.passphraseFile),
    trusted: await loadTrustedSigners(pair.publicKeyFile),
  };
}

const gpg = (pair: GpgKeyPair, args: readonly string[]) =>
  runTool('gpg', ['--batch', '--yes', '--trust-model', 'always', '--status-fd', '2', ...args], {
    env: { ...process.env, GNUPGHOME: pair.gnupgHome },
  });

describe('WAL segments and the real gpg', () => {
  for (const algorithm of ['ed25519', 'rsa2048']) {
    test(`${algorithm}: gpg --decrypt reads encryptBytes' message, its MDC good, with a good signature from the signer for the name`, async () => {
      const pair = pairs.get(algorithm)!;
      const { recipients, signer } = await material(pair);
      const plain = randomBytes(3_200_000);
      const sealed = join(work, `${algorithm}.gpg`);
      writeFileSync(sealed, await encryptBytes(plain, recipients, { signer, objectKey: NAME }));
      const out = join(work, `${algorithm}.out`);
      const result = await gpg(pair, ['--verify-options', 'show-notations', '--output', out, '--decrypt', sealed]);
      assert.match(result.stderr, /\[GNUPG:\] GOODMDC/);
      assert.match(result.stderr, new RegExp(`\\[GNUPG:\\] VALIDSIG ${pair.fingerprint}`));
      assert.match(result.stderr, /Good signature from "PMS Segment/);
      assert.match(result.stderr, new RegExp(`${OBJECT_NOTATION}=${NAME}`));
      assert.ok(readFileSync(out).equals(plain));
    });
  }

  for (const compress of ['zlib (gpg default)', 'none (-z 0)']) {
    test(`decryptBytes reads gpg --sign --encrypt, compression ${compress}, and refuses it altered`, async () => {
      const pair = pairs.get('ed25519')!;
      const { keys, trusted } = await material(pair);
      const plain = randomBytes(1_000_000);
      const input = join(work, 'plain');
      writeFileSync(input, plain);
      const sealed = join(work, 'gpg-made.gpg');
      await gpg(pair, [
        ...(compress.startsWith('none') ? ['-z', '0'] : []),
        '--sig-notation',
        `${OBJECT_NOTATION}=${NAME}`,
        '--local-user',
        pair.fingerprint,
        '--recipient',
        pair.fingerprint,
        '--output',
        sealed,
        '--sign',
        '--encrypt',
        input,
      ]);
      const bytes = readFileSync(sealed);
      const read = await decryptBytes(bytes, keys, { trusted, objectKey: NAME });
      assert.ok(Buffer.from(read.plaintext).equals(plain));
      assert.equal(read.signature?.signer, pair.fingerprint);
      const altered = Buffer.from(bytes);
      altered[altered.length - 30]! ^= 0x01;
      await assert.rejects(decryptBytes(altered, keys, { trusted, objectKey: NAME }), (error: unknown) =>
        isPmsError(error, 'PMS_ERR_INTEGRITY'),
      );
    });
  }
});
