import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as openpgp from 'openpgp';

/**
 * The symmetric layer of one OpenPGP message shape, for whole buffers (a WAL segment), done with
 * node:crypto: PKESK packet(s), then a SEIPD v1 packet holding one-pass signature, literal data
 * and signature packets, then the MDC (RFC 4880 §5.13, RFC 9580 §5.13.1). It is the shape
 * openpgp.encrypt makes with aeadProtect off and no compression, byte for byte the same framing,
 * so gpg 2.2 and openpgp.js read it as before. Everything asymmetric stays with openpgp.js: the
 * session key's choice and its PKESK packets, the signature and its verification. What openpgp.js
 * spends beside OpenSSL on such a buffer is copies (each packet's write concatenates its
 * content, the MDC input is concatenated, then prefix and hash again): here the data is read in
 * place by SHA-1 and the cipher, and the ciphertext written once into the message's buffer.
 */

/** openpgp.js's session key names for the ciphers this path does; any other goes through openpgp.js. */
const CFB: Readonly<Record<string, { readonly cipher: string; readonly keySize: number }>> = {
  aes128: { cipher: 'aes-128-cfb', keySize: 16 },
  aes192: { cipher: 'aes-192-cfb', keySize: 24 },
  aes256: { cipher: 'aes-256-cfb', keySize: 32 },
};
const BLOCK = 16;
/** The random prefix: one block, then its last two octets repeated (the "quick check"). */
const PREFIX = BLOCK + 2;
/** The MDC packet: new-format header of tag 19, length 20, then SHA-1. */
const MDC_HEAD = [0xd3, 0x14] as const;
const MDC = 2 + 20;
const TAG = { pkesk: 1, signature: 2, onePassSignature: 4, literal: 11, seipd: 18 } as const;
/**
 * Ciphertext goes from OpenSSL to the message's buffer in slices this big: a slice stays in the
 * CPU's cache between the cipher writing it and the copy reading it, and the message needs one
 * full-size buffer instead of two.
 */
const SLICE = 256 * 1024;

/** A new-format packet header (RFC 9580 §4.2.1) with a definite length. */
function header(tag: number, length: number): Buffer {
  if (length < 192) return Buffer.from([0xc0 | tag, length]);
  if (length < 8384) return Buffer.from([0xc0 | tag, ((length - 192) >> 8) + 192, (length - 192) & 0xff]);
  const out = Buffer.alloc(6);
  out[0] = 0xc0 | tag;
  out[1] = 0xff;
  out.writeUInt32BE(length, 2);
  return out;
}

/** One packet's place in a buffer (`body` is a view, or a copy joined from partial lengths). */
interface Packet {
  readonly tag: number;
  readonly start: number;
  readonly body: Uint8Array;
  readonly end: number;
}

/**
 * Reads the packet at `at`, old or new format (RFC 9580 §4.2). Partial body lengths are joined
 * when `allowPartial` (one copy); undefined for anything this path does not take (indeterminate
 * old-format length, a length past the end, partial lengths where not allowed), which sends the
 * message to openpgp.js.
 */
function packetAt(bytes: Uint8Array, at: number, allowPartial: boolean): Packet | undefined {
  const first = bytes[at];
  if (first === undefined || (first & 0x80) === 0) return undefined;
  let pos = at + 1;
  const need = (n: number): boolean => pos + n <= bytes.length;
  if ((first & 0x40) === 0) {
    const tag = (first >> 2) & 0x0f;
    const type = first & 0x03;
    if (type === 3) return undefined;
    const size = 1 << type;
    if (!need(size)) return undefined;
    let length = 0;
    for (let i = 0; i < size; i++) length = length * 256 + bytes[pos + i]!;
    pos += size;
    if (!need(length)) return undefined;
    return { tag, start: at, body: bytes.subarray(pos, pos + length), end: pos + length };
  }
  const tag = first & 0x3f;
  const parts: Uint8Array[] = [];
  for (;;) {
    if (!need(1)) return undefined;
    const b = bytes[pos]!;
    let length: number;
    let partial = false;
    if (b < 192) {
      length = b;
      pos += 1;
    } else if (b < 224) {
      if (!need(2)) return undefined;
      length = ((b - 192) << 8) + bytes[pos + 1]! + 192;
      pos += 2;
    } else if (b === 255) {
      if (!need(5)) return undefined;
      length = ((bytes[pos + 1]! << 24) >>> 0) + (bytes[pos + 2]! << 16) + (bytes[pos + 3]! << 8) + bytes[pos + 4]!;
      pos += 5;
    } else {
      if (!allowPartial) return undefined;
      length = 1 << (b & 0x1f);
      partial = true;
      pos += 1;
    }
    if (!need(length)) return undefined;
    parts.push(bytes.subarray(pos, pos + length));
    pos += length;
    if (!partial) break;
  }
  const body = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  return { tag, start: at, body, end: pos };
}

/** The literal data packet's own header: binary, no file name, the given time (RFC 9580 §5.9). */
function literalHead(date: Date): Buffer {
  const out = Buffer.alloc(6);
  out[0] = 0x62; // 'b'
  out[1] = 0;
  out.writeUInt32BE(Math.floor(date.getTime() / 1000), 2);
  return out;
}

/** A v3 one-pass signature packet's body announcing `signature`, the only (so last) one. */
function onePassFor(signature: openpgp.SignaturePacket): Buffer | undefined {
  if (signature.version !== 4 || signature.signatureType === null || signature.hashAlgorithm === null) return undefined;
  if (signature.publicKeyAlgorithm === null) return undefined;
  const keyId = Buffer.from(signature.issuerKeyID.toHex(), 'hex');
  if (keyId.length !== 8) return undefined;
  return Buffer.concat([
    Buffer.from([3, signature.signatureType, signature.hashAlgorithm, signature.publicKeyAlgorithm]),
    keyId,
    Buffer.from([1]),
  ]);
}

export interface SealOptions {
  readonly encryptionKeys: readonly openpgp.PublicKey[];
  readonly signingKey: openpgp.PrivateKey;
  readonly notation: openpgp.RawNotation;
  readonly config: openpgp.PartialConfig;
}

/**
 * Signs and encrypts `plain` into the message openpgp.encrypt would make. Undefined when the
 * recipients' preferences lead openpgp.js to another cipher or to SEIPD v2, or when the
 * signature is not a v4 one: the caller then asks openpgp.js for the whole message.
 */
export async function sealBytes(plain: Uint8Array, options: SealOptions): Promise<Uint8Array | undefined> {
  if (plain.length > 0xffff_ff00) return undefined;
  const date = new Date(Math.floor(Date.now() / 1000) * 1000);
  const encryptionKeys = [...options.encryptionKeys];
  const sessionKey = await openpgp.generateSessionKey({ encryptionKeys, date, config: options.config });
  const cipher = CFB[sessionKey.algorithm];
  if (sessionKey.aeadAlgorithm !== undefined || cipher === undefined || sessionKey.data.length !== cipher.keySize) return undefined;
  // The same signature openpgp.encrypt puts inside (for a v4 signature a detached one is the
  // same packet: binary type over the literal data's content), made by openpgp.js. (encrypt
  // also weighs the recipients' hash preferences: they cannot move it off SHA-256, the preferred
  // algorithm and the one every key must accept, unless the signing curve needs a longer hash.)
  // format 'object': for 'binary' with detached, openpgp.sign also writes and drains the
  // literal data packet (one more copy of the data, discarded).
  const signed: unknown = await openpgp.sign({
    message: await openpgp.createMessage({ binary: plain, format: 'binary', date }),
    signingKeys: [options.signingKey],
    signatureNotations: [options.notation],
    detached: true,
    format: 'object',
    date,
    config: options.config,
  });
  // openpgp.js's types give a Message for 'object'; detached, it is a Signature.
  if (!(signed instanceof openpgp.Signature)) return undefined;
  const onePass = signed.packets.length === 1 ? onePassFor(signed.packets[0]!) : undefined;
  const signatureBytes = signed.write();
  if (onePass === undefined || !(signatureBytes instanceof Uint8Array)) return undefined;
  const pkesk = await openpgp.encryptSessionKey({
    data: sessionKey.data,
    algorithm: sessionKey.algorithm,
    encryptionKeys,
    format: 'binary',
    date,
    config: options.config,
  });

  const prefix = randomBytes(PREFIX);
  prefix[BLOCK] = prefix[BLOCK - 2]!;
  prefix[BLOCK + 1] = prefix[BLOCK - 1]!;
  const lead = Buffer.concat([
    prefix,
    header(TAG.onePassSignature, onePass.length),
    onePass,
    header(TAG.literal, 6 + plain.length),
    literalHead(date),
  ]);
  const trail = Buffer.concat([signatureBytes, Buffer.from(MDC_HEAD)]);
  const mdc = createHash('sha1').update(lead).update(plain).update(trail).digest();

  const bodyLength = 1 + lead.length + plain.length + trail.length + mdc.length;
  const seipdHead = header(TAG.seipd, bodyLength);
  const message = Buffer.allocUnsafe(pkesk.length + seipdHead.length + bodyLength);
  message.set(pkesk, 0);
  message.set(seipdHead, pkesk.length);
  let at = pkesk.length + seipdHead.length;
  message[at++] = 1; // SEIPD version 1
  // OpenPGP's CFB for SEIPD v1 is plain CFB-128 over prefix and data, from an all-zero IV, with
  // no resynchronisation (RFC 9580 §5.13.1): what OpenSSL's aes-*-cfb does.
  const encrypt = createCipheriv(cipher.cipher, sessionKey.data, Buffer.alloc(BLOCK));
  const put = (out: Uint8Array): void => {
    message.set(out, at);
    at += out.length;
  };
  put(encrypt.update(lead));
  for (let off = 0; off < plain.length; off += SLICE) put(encrypt.update(plain.subarray(off, Math.min(off + SLICE, plain.length))));
  put(encrypt.update(trail));
  put(encrypt.update(mdc));
  put(encrypt.final());
  if (at !== message.length) throw new Error(`internal: sealed ${at} of ${message.length} bytes`);
  return message;
}

/** What openBytes found: the literal data and openpgp.js's verdict on its signature. */
export interface Opened {
  readonly plaintext: Uint8Array;
  readonly signatures: Awaited<ReturnType<typeof openpgp.verify>>['signatures'];
}

/** A failure of the message's integrity, worded as openpgp.js words it (classifyCipherError maps it). */
export class ModificationDetected extends Error {
  constructor() {
    super('Modification detected.');
  }
}

/**
 * Decrypts and verifies a message of sealBytes' shape: PKESK packet(s) and one SEIPD v1 packet
 * of definite length, holding one-pass signature, literal data and one v4 binary signature.
 * Undefined for any other shape (SEIPD v2, compression, several signatures, no signature, a
 * cipher other than AES, partial lengths outside the literal data, ...): the caller then hands
 * the whole message to openpgp.js. Nothing is returned before the MDC and the signature were
 * checked; the signature's verdict is openpgp.js's, for the caller's trust rule.
 *
 * `session` decrypts the PKESK packets (openpgp.js), given the PKESK part of the message.
 */
export async function openBytes(
  encrypted: Uint8Array,
  session: (pkesk: Uint8Array) => Promise<ReadonlyArray<{ readonly data: Uint8Array; readonly algorithm: string | null }>>,
  verificationKeys: readonly openpgp.PublicKey[],
): Promise<Opened | undefined> {
  let at = 0;
  let seipd: Packet | undefined;
  while (at < encrypted.length) {
    const packet = packetAt(encrypted, at, false);
    if (packet === undefined) return undefined;
    if (packet.tag === TAG.seipd) {
      seipd = packet;
      break;
    }
    if (packet.tag !== TAG.pkesk) return undefined;
    at = packet.end;
  }
  if (seipd === undefined || seipd.end !== encrypted.length || seipd.start === 0 || seipd.body[0] !== 1) return undefined;
  const sessionKeys = await session(encrypted.subarray(0, seipd.start));
  const ciphertext = seipd.body.subarray(1);
  let plain: Buffer | undefined;
  for (const key of sessionKeys) {
    const cipher = key.algorithm === null ? undefined : CFB[key.algorithm];
    if (cipher === undefined || key.data.length !== cipher.keySize) return undefined;
    const decrypt = createDecipheriv(cipher.cipher, key.data, Buffer.alloc(BLOCK));
    // CFB is a stream mode: update returns every byte and final none; a concat would copy it all.
    const candidate = decrypt.update(ciphertext);
    if (decrypt.final().length !== 0) throw new Error('internal: CFB left bytes for final');
    if (intact(candidate)) {
      plain = candidate;
      break;
    }
  }
  if (plain === undefined) throw new ModificationDetected();
  return readSigned(plain.subarray(PREFIX, plain.length - MDC), verificationKeys);
}

/**
 * The MDC and the quick check, both over the whole decrypted packet, with one verdict. The quick
 * check's two octets are compared but never acted on alone: an early "wrong key" answer for a
 * mismatch is the oracle RFC 4880 §14 and RFC 9580 §13.4 warn of (an attacker who can submit
 * altered ciphertexts learns two plaintext octets per block from which answer comes), so a
 * mismatch is reported exactly as a failed MDC, after the same work. With the session key
 * proven by the PKESK (its checksum or key wrap), a mismatch can only mean an altered message.
 */
function intact(plain: Buffer): boolean {
  if (plain.length < PREFIX + MDC) return false;
  const hashed = plain.subarray(0, plain.length - 20);
  const digest = createHash('sha1').update(hashed).digest();
  const mdcOk = timingSafeEqual(digest, plain.subarray(plain.length - 20));
  const headOk = plain[plain.length - MDC] === MDC_HEAD[0] && plain[plain.length - MDC + 1] === MDC_HEAD[1];
  const quickOk = plain[BLOCK - 2] === plain[BLOCK] && plain[BLOCK - 1] === plain[BLOCK + 1];
  return mdcOk && headOk && quickOk;
}

/** One-pass signature, literal data, signature: the literal data (a view) and openpgp.js's verdict. */
async function readSigned(packets: Uint8Array, verificationKeys: readonly openpgp.PublicKey[]): Promise<Opened | undefined> {
  const onePass = packetAt(packets, 0, false);
  if (onePass?.tag !== TAG.onePassSignature) return undefined;
  const literal = packetAt(packets, onePass.end, true);
  if (literal?.tag !== TAG.literal) return undefined;
  const signed = packetAt(packets, literal.end, false);
  if (signed?.tag !== TAG.signature || signed.end !== packets.length) return undefined;
  const nameLength = literal.body[1];
  if (nameLength === undefined || literal.body.length < 6 + nameLength) return undefined;
  const plaintext = literal.body.subarray(6 + nameLength);
  let signature: openpgp.Signature;
  try {
    signature = await openpgp.readSignature({ binarySignature: packets.subarray(signed.start, signed.end) });
  } catch {
    return undefined;
  }
  const [only, ...more] = signature.packets;
  if (only === undefined || more.length > 0 || only.signatureType !== openpgp.enums.signature.binary) return undefined;
  const announced = onePassFor(only);
  if (announced === undefined || !announced.equals(onePass.body)) return undefined;
  // For a v4 binary signature the one inside a message and a detached one over the same content
  // are hashed alike, so openpgp.js's detached verification is its verdict on this one.
  presetDigest(only, plaintext);
  const verified = await openpgp.verify({
    message: await openpgp.createMessage({ binary: plaintext, format: 'binary' }),
    signature,
    verificationKeys: [...verificationKeys],
    format: 'binary',
  });
  return { plaintext, signatures: verified.signatures };
}

/** node:crypto's names for the hashes a signature may use; openpgp.js hashes any other itself. */
const HASHES: ReadonlyMap<number, string> = new Map([
  [openpgp.enums.hash.sha224, 'sha224'],
  [openpgp.enums.hash.sha256, 'sha256'],
  [openpgp.enums.hash.sha384, 'sha384'],
  [openpgp.enums.hash.sha512, 'sha512'],
]);

/**
 * Hands openpgp.js the digest a v4 binary signature is checked against (RFC 9580 §5.2.4: the
 * data, the signature's hashed part, then 0x04 0xFF and that part's length), computed over the
 * data in place: openpgp.js itself first concatenates data and trailer into a new buffer. It is
 * the field openpgp.js fills the same way when it verifies a one-pass-signed stream
 * (`hashed`, read by SignaturePacket.verify), and everything else stays openpgp.js's: the
 * 2-octet digest prefix, the public-key check, key validity at signing time, expiry, rejected
 * hashes, critical subpackets. With the field set, openpgp.js checks the signature against this
 * digest and never hashes the message it is handed (a review showed a digest of A verifying a
 * call that passed B): the one rule that keeps this closed is that the bytes hashed here are
 * the bytes returned, which readSigned keeps by hashing and returning the same `plaintext` view.
 * A version of openpgp.js that ignored the field would hash the same data itself.
 */
function presetDigest(packet: openpgp.SignaturePacket, data: Uint8Array): void {
  const name = packet.hashAlgorithm === null ? undefined : HASHES.get(packet.hashAlgorithm);
  const hashedPart = packet.signatureData;
  if (name === undefined || hashedPart === null || packet.version !== 4) return;
  const trailer = Buffer.alloc(6);
  trailer[0] = 4;
  trailer[1] = 0xff;
  trailer.writeUInt32BE(hashedPart.length, 2);
  const digest = new Uint8Array(createHash(name).update(data).update(hashedPart).update(trailer).digest());
  (packet as { hashed?: Promise<Uint8Array> }).hashed = Promise.resolve(digest);
}
