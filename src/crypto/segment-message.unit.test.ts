import { strict as assert } from 'node:assert';
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { isPmsError } from '../errors/catalogue.js';
import { type TestSigning, testSigning } from '../testing/manifest-fixtures.js';
import { type DecryptionKeys, type RecipientSet, loadDecryptionKeys, loadRecipients } from './keys.js';
import { type SigningKey, type TrustedSigners, loadSigningKey, loadTrustedSigners, objectNotation } from './signing.js';
import {
  type VerifyAs,
  decryptBytes,
  decryptBytesWithOpenPgp,
  decryptStream,
  encryptBytes,
  encryptBytesWithOpenPgp,
  encryptStream,
} from './stream-cipher.js';

/**
 * encryptBytes/decryptBytes do the SEIPD v1 layer with node:crypto (segment-message.ts). These
 * tests hold them to openpgp.js: what one writes the other reads, each refusal carries the code
 * openpgp.js's path gives for the same bytes, and a message forged with the session key (a
 * valid MDC around a wrong inside) is refused by the signature or the quick check.
 */

const NAME = 'wal/00000001/000000010000000000000042.zst.gpg';
let dir: string;
let signing: TestSigning;

interface KeySet {
  readonly recipients: RecipientSet;
  readonly keys: DecryptionKeys;
  readonly signer: SigningKey;
  readonly trusted: TrustedSigners;
}
/** One key pair per algorithm family: it encrypts, decrypts, signs and is the only trusted signer. */
const sets = new Map<string, KeySet>();
let other: DecryptionKeys;

async function keySet(name: string, options: { type: 'ecc' | 'curve25519' | 'rsa'; curve?: 'curve25519Legacy' }): Promise<KeySet> {
  const key = await openpgp.generateKey({
    userIDs: [{ name }],
    ...options,
    ...(options.type === 'rsa' ? { rsaBits: 2048 } : {}),
    format: 'armored',
  });
  writeFileSync(join(dir, `${name}.pub`), key.publicKey);
  writeFileSync(join(dir, `${name}.sec`), key.privateKey, { mode: 0o600 });
  const fingerprint = (await openpgp.readKey({ armoredKey: key.publicKey })).getFingerprint();
  return {
    recipients: await loadRecipients(join(dir, `${name}.pub`), fingerprint),
    keys: await loadDecryptionKeys(join(dir, `${name}.sec`), undefined),
    signer: await loadSigningKey(join(dir, `${name}.sec`), undefined),
    trusted: await loadTrustedSigners(join(dir, `${name}.pub`)),
  };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pms-segment-message-'));
  signing = await testSigning();
  sets.set('ed25519', await keySet('ed25519', { type: 'curve25519' }));
  sets.set('ed25519-legacy', await keySet('legacy', { type: 'ecc', curve: 'curve25519Legacy' }));
  sets.set('rsa', await keySet('rsa', { type: 'rsa' }));
  other = (await keySet('other', { type: 'curve25519' })).keys;
});

after(() => rmSync(dir, { recursive: true, force: true }));

const main = (): KeySet => sets.get('ed25519')!;
const verifyAs = (set: KeySet, extra: Partial<VerifyAs> = {}): VerifyAs => ({ trusted: set.trusted, objectKey: NAME, ...extra });
const seal = (set: KeySet, plain: Uint8Array, objectKey = NAME, signer = set.signer) =>
  encryptBytes(plain, set.recipients, { signer, objectKey });

/** The code a promise fails with ('ok' when it does not fail). */
async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    return isPmsError(error) ? error.code : `not ours: ${(error as Error).message}`;
  }
}

/** Both readers on the same bytes: the code each gives. */
async function bothReaders(bytes: Uint8Array, set = main(), extra: Partial<VerifyAs> = {}): Promise<[string, string]> {
  return [
    await outcome(decryptBytes(bytes, set.keys, verifyAs(set, extra))),
    await outcome(decryptBytesWithOpenPgp(bytes, set.keys, verifyAs(set, extra))),
  ];
}

// --- a minimal reader of our own framing, to forge messages with the session key -------------

function packetAt(bytes: Uint8Array, at: number): { tag: number; start: number; bodyStart: number; end: number } {
  const first = bytes[at]!;
  assert.equal(first & 0xc0, 0xc0, 'new-format header');
  const b = bytes[at + 1]!;
  const [length, size] =
    b < 192
      ? [b, 1]
      : b < 224
        ? [((b - 192) << 8) + bytes[at + 2]! + 192, 2]
        : [Buffer.from(bytes.subarray(at + 2, at + 6)).readUInt32BE(0), 5];
  assert.notEqual(b >= 224 && b < 255, true, 'no partial lengths');
  return { tag: first & 0x3f, start: at, bodyStart: at + 1 + size, end: at + 1 + size + length };
}

function header(tag: number, length: number): Buffer {
  const out = Buffer.alloc(6);
  out[0] = 0xc0 | tag;
  out[1] = 0xff;
  out.writeUInt32BE(length, 2);
  return out;
}

interface Opened {
  readonly pkesk: Buffer;
  readonly key: Buffer;
  /** prefix (18), one-pass signature, literal, signature packets. */
  readonly prefix: Buffer;
  readonly packets: Buffer[];
}

async function open(message: Uint8Array, keys = main().keys): Promise<Opened> {
  let at = 0;
  let seipd = packetAt(message, at);
  while (seipd.tag !== 18) {
    at = seipd.end;
    seipd = packetAt(message, at);
  }
  const [session] = await openpgp.decryptSessionKeys({
    message: await openpgp.readMessage({ binaryMessage: message }),
    decryptionKeys: [...keys.keys],
  });
  assert.equal(session?.algorithm, 'aes256');
  const key = Buffer.from(session.data);
  const plain = createDecipheriv('aes-256-cfb', key, Buffer.alloc(16)).update(message.subarray(seipd.bodyStart + 1, seipd.end));
  const inner = plain.subarray(18, plain.length - 22);
  const packets: Buffer[] = [];
  for (let p = 0; p < inner.length; ) {
    const packet = packetAt(inner, p);
    packets.push(Buffer.from(inner.subarray(packet.start, packet.end)));
    p = packet.end;
  }
  return { pkesk: Buffer.from(message.subarray(0, seipd.start)), key, prefix: Buffer.from(plain.subarray(0, 18)), packets };
}

/** Re-encrypts an opened message, with a correct MDC unless `mdc` is given. */
function reseal(opened: Opened, options: { prefix?: Buffer; packets?: Buffer[]; mdc?: (right: Buffer) => Buffer } = {}): Uint8Array {
  const hashed = Buffer.concat([options.prefix ?? opened.prefix, ...(options.packets ?? opened.packets), Buffer.from([0xd3, 0x14])]);
  const right = createHash('sha1').update(hashed).digest();
  const plain = Buffer.concat([hashed, options.mdc ? options.mdc(right) : right]);
  const ciphertext = createCipheriv('aes-256-cfb', opened.key, Buffer.alloc(16)).update(plain);
  return Buffer.concat([opened.pkesk, header(18, 1 + ciphertext.length), Buffer.from([1]), ciphertext]);
}

describe('encryptBytes writes the standard message openpgp.js writes, through node:crypto', () => {
  for (const family of ['ed25519', 'ed25519-legacy', 'rsa']) {
    test(`${family}: what encryptBytes writes decryptBytes and openpgp.js's own decrypt+verify read, signed for its name`, async () => {
      const set = sets.get(family)!;
      const plain = randomBytes(200_000);
      const sealed = await seal(set, plain);
      const read = await decryptBytes(sealed, set.keys, verifyAs(set));
      assert.ok(Buffer.from(read.plaintext).equals(plain));
      assert.equal(read.signature?.signer, set.signer.description.fingerprint);
      assert.equal(read.signature?.object, NAME);
      const result = await openpgp.decrypt({
        message: await openpgp.readMessage({ binaryMessage: sealed }),
        decryptionKeys: [...set.keys.keys],
        verificationKeys: [...set.trusted.keys],
        expectSigned: true,
        format: 'binary',
      });
      assert.ok(Buffer.from(result.data).equals(plain));
      await result.signatures[0]!.verified;
      const bound = (await result.signatures[0]!.signature).packets[0]!.rawNotations.find((n) => n.name === objectNotation(NAME).name);
      assert.equal(new TextDecoder().decode(bound?.value), NAME);
      // and the old reader (openpgp.decrypt) accepts it by our trust rule too
      assert.equal((await decryptBytesWithOpenPgp(sealed, set.keys, verifyAs(set))).signature?.signer, set.signer.description.fingerprint);
    });
  }

  test('the packets are framed as openpgp.encrypt frames them: same sequence, same lengths, same total', async () => {
    const set = main();
    const plain = randomBytes(3_200_017);
    const ours = await open(await seal(set, plain));
    const theirs = await open(await encryptBytesWithOpenPgp(plain, set.recipients, { signer: set.signer, objectKey: NAME }));
    const shape = (o: Opened) => o.packets.map((p) => [p[0], p.length]);
    assert.deepEqual(shape(ours), shape(theirs));
    assert.equal(ours.pkesk.length, theirs.pkesk.length);
    assert.deepEqual(ours.packets[0], theirs.packets[0], 'the same one-pass signature packet');
    // quick check: the prefix's last two octets repeat the two before them
    assert.deepEqual(ours.prefix.subarray(16, 18), ours.prefix.subarray(14, 16));
  });

  test('an empty buffer and one of every small length round-trip', async () => {
    for (const length of [0, 1, 15, 16, 17, 191, 192, 8383, 8384, 262_145]) {
      const plain = randomBytes(length);
      const read = await decryptBytes(await seal(main(), plain), main().keys, verifyAs(main()));
      assert.ok(Buffer.from(read.plaintext).equals(plain), `length ${length}`);
    }
  });
});

describe('decryptBytes reads what openpgp.js and the stream path wrote', () => {
  test('the old encryptBytes (openpgp.encrypt of a buffer) and encryptStream (partial lengths)', async () => {
    const set = main();
    const plain = randomBytes(1_500_000);
    const old = await encryptBytesWithOpenPgp(plain, set.recipients, { signer: set.signer, objectKey: NAME });
    assert.ok(Buffer.from((await decryptBytes(old, set.keys, verifyAs(set))).plaintext).equals(plain));
    const streamed = await buffer(await encryptStream(Readable.from([plain]), set.recipients, { signer: set.signer, objectKey: NAME }));
    const read = await decryptBytes(streamed, set.keys, verifyAs(set));
    assert.ok(Buffer.from(read.plaintext).equals(plain));
    assert.equal(read.signature?.object, NAME);
  });

  test('the stream reader reads what encryptBytes writes', async () => {
    const plain = randomBytes(600_000);
    const { plaintext, signature } = await decryptStream(Readable.from([await seal(main(), plain)]), main().keys, verifyAs(main()));
    assert.ok((await buffer(plaintext)).equals(plain));
    assert.equal((await signature)?.object, NAME);
  });

  test('shapes it does not take natively (compressed, two signatures, unsigned) get the old answers', async () => {
    const set = main();
    const plain = randomBytes(100_000);
    const message = await openpgp.createMessage({ binary: plain, format: 'binary' });
    const compressed = await openpgp.encrypt({
      message,
      encryptionKeys: [...set.recipients.keys],
      signingKeys: [set.signer.key],
      signatureNotations: [objectNotation(NAME)],
      format: 'binary',
      config: { preferredCompressionAlgorithm: openpgp.enums.compression.zlib, aeadProtect: false },
    });
    assert.ok(Buffer.from((await decryptBytes(compressed, set.keys, verifyAs(set))).plaintext).equals(plain));

    const twice = await openpgp.encrypt({
      message,
      encryptionKeys: [...set.recipients.keys],
      signingKeys: [set.signer.key, signing.stranger.key],
      signatureNotations: [objectNotation(NAME)],
      format: 'binary',
      config: { aeadProtect: false },
    });
    await assert.rejects(
      decryptBytes(twice, set.keys, verifyAs(set)),
      (error: unknown) => isPmsError(error, 'PMS_ERR_UNTRUSTED') && /carries 2 signatures/.test(error.message),
    );

    const unsigned = await openpgp.encrypt({
      message,
      encryptionKeys: [...set.recipients.keys],
      format: 'binary',
      config: { aeadProtect: false },
    });
    await assert.rejects(
      decryptBytes(unsigned, set.keys, verifyAs(set)),
      (error: unknown) => isPmsError(error, 'PMS_ERR_UNTRUSTED') && /is not signed/.test(error.message),
    );
    const allowed = await decryptBytes(unsigned, set.keys, verifyAs(set, { allowUnsigned: true }));
    assert.ok(Buffer.from(allowed.plaintext).equals(plain));
    assert.equal(allowed.signature, undefined);

    const v2 = await openpgp.encrypt({
      message,
      encryptionKeys: [...set.recipients.keys],
      signingKeys: [set.signer.key],
      signatureNotations: [objectNotation(NAME)],
      format: 'binary',
      config: { aeadProtect: true },
    });
    assert.ok(Buffer.from((await decryptBytes(v2, set.keys, verifyAs(set))).plaintext).equals(plain));
  });
});

describe('decryptBytes refuses every altered message with the code the openpgp.js path gives', () => {
  test('one flipped bit anywhere: prefix, one-pass signature, data, signature, MDC, PKESK', async () => {
    const sealed = await seal(main(), randomBytes(300_000));
    const start = (await open(sealed)).pkesk.length + 7; // after the SEIPD header (6) and version (1)
    const places = {
      'PKESK key material': 20,
      'first block (random prefix)': start + 3,
      'quick-check octets': start + 15,
      'one-pass signature': start + 22,
      'the data': start + 150_000,
      'the signature packet': sealed.length - 100,
      'the MDC': sealed.length - 5,
      'last octet': sealed.length - 1,
    };
    for (const [where, at] of Object.entries(places)) {
      const bytes = Buffer.from(sealed);
      bytes[at]! ^= 0x10;
      const [ours, theirs] = await bothReaders(bytes);
      assert.notEqual(ours, 'ok', where);
      assert.equal(ours, theirs, where);
      if (where !== 'PKESK key material') assert.equal(ours, 'PMS_ERR_INTEGRITY', where);
    }
  });

  test('a truncated message, however short', async () => {
    const sealed = await seal(main(), randomBytes(100_000));
    for (const length of [sealed.length - 1, sealed.length - 21, Math.floor(sealed.length / 2), 120, 10, 1, 0]) {
      const [ours, theirs] = await bothReaders(sealed.subarray(0, length));
      assert.equal(ours, 'PMS_ERR_INTEGRITY', `cut to ${length}`);
      assert.equal(ours, theirs, `cut to ${length}`);
    }
    const [ours, theirs] = await bothReaders(Buffer.concat([sealed, Buffer.from([0xc2, 0x00])]));
    assert.notEqual(ours, 'ok', 'trailing bytes');
    assert.equal(ours, theirs, 'trailing bytes');
  });

  test('a wrong MDC around an intact inside (forged with the session key)', async () => {
    const opened = await open(await seal(main(), randomBytes(50_000)));
    assert.equal((await bothReaders(reseal(opened))).join(), 'ok,ok', 'the forger re-encrypts correctly');
    for (const mdc of [(right: Buffer) => Buffer.concat([right.subarray(0, 19), Buffer.from([right[19]! ^ 1])]), () => Buffer.alloc(20)]) {
      assert.deepEqual(await bothReaders(reseal(opened, { mdc })), ['PMS_ERR_INTEGRITY', 'PMS_ERR_INTEGRITY']);
    }
  });

  test('a prefix whose quick-check octets do not repeat is refused like a failed MDC, even with a matching MDC', async () => {
    // openpgp.js does not look at these octets, so its reader takes the message: that the new one
    // refuses it also proves it read both our own and openpgp.encrypt's message natively.
    const plain = randomBytes(50_000);
    for (const sealed of [
      await seal(main(), plain),
      await encryptBytesWithOpenPgp(plain, main().recipients, { signer: main().signer, objectKey: NAME }),
    ]) {
      const opened = await open(sealed);
      const prefix = Buffer.from(opened.prefix);
      prefix[17]! ^= 0xff;
      const bytes = reseal(opened, { prefix });
      await assert.rejects(
        decryptBytes(bytes, main().keys, verifyAs(main())),
        (error: unknown) => isPmsError(error, 'PMS_ERR_INTEGRITY') && /Modification detected/.test(error.message),
      );
      assert.equal((await bothReaders(bytes))[1], 'ok');
    }
  });

  test("another message's signature around this data (a valid MDC): the signature does not verify", async () => {
    const a = await open(await seal(main(), randomBytes(40_000)));
    const b = await open(await seal(main(), randomBytes(40_000)));
    const swapped = reseal(a, { packets: [a.packets[0]!, a.packets[1]!, b.packets[2]!] });
    assert.deepEqual(await bothReaders(swapped), ['PMS_ERR_UNTRUSTED', 'PMS_ERR_UNTRUSTED']);
    await assert.rejects(
      decryptBytes(swapped, main().keys, verifyAs(main())),
      (error: unknown) => isPmsError(error, 'PMS_ERR_UNTRUSTED') && /does not verify/.test(error.message),
    );
    // other data under this signature: the same
    const data = Buffer.from(a.packets[1]!);
    data[data.length - 1]! ^= 1;
    assert.deepEqual(await bothReaders(reseal(a, { packets: [a.packets[0]!, data, a.packets[2]!] })), [
      'PMS_ERR_UNTRUSTED',
      'PMS_ERR_UNTRUSTED',
    ]);
  });

  test('a genuine message read under another name, an untrusted signer, the wrong private key', async () => {
    const plain = randomBytes(20_000);
    const elsewhere = await seal(main(), plain, 'wal/00000001/000000010000000000000001.zst.gpg');
    await assert.rejects(
      decryptBytes(elsewhere, main().keys, verifyAs(main())),
      (error: unknown) =>
        isPmsError(error, 'PMS_ERR_UNTRUSTED') && /was made for wal\/00000001\/000000010000000000000001/.test(error.message),
    );
    const stranger = await seal(main(), plain, NAME, signing.stranger);
    for (const allowUnsigned of [false, true]) {
      await assert.rejects(
        decryptBytes(stranger, main().keys, verifyAs(main(), { allowUnsigned })),
        (error: unknown) =>
          isPmsError(error, 'PMS_ERR_UNTRUSTED') && error.message.includes(`signed by ${signing.stranger.description.fingerprint}`),
      );
    }
    const sealed = await seal(main(), plain);
    await assert.rejects(
      decryptBytes(sealed, other, verifyAs(main())),
      (error: unknown) => isPmsError(error, 'PMS_ERR_KEY') && /no private key for this backup/.test(error.message),
    );
    const [ours, theirs] = await bothReaders(sealed, { ...main(), keys: other });
    assert.equal(ours, theirs);
  });

  test('not OpenPGP at all', async () => {
    for (const bytes of [Buffer.from('not a message'), Buffer.alloc(64), randomBytes(4096)]) {
      const [ours, theirs] = await bothReaders(bytes);
      assert.equal(ours, theirs);
      assert.notEqual(ours, 'ok');
    }
  });
});
