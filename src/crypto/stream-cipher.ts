import type { Readable } from 'node:stream';
import * as openpgp from 'openpgp';
import { PmsError, isPmsError } from '../errors/catalogue.js';
import type { DecryptionKeys, RecipientSet } from './keys.js';
import { openBytes, sealBytes } from './segment-message.js';
import { type SignatureFacts, type SigningKey, type TrustedSigners, checkSignatures, objectNotation, untrusted } from './signing.js';
import { nodeToWeb, webToNode } from './web-stream-bridge.js';

/**
 * Security-relevant defaults, beside their values (openpgp.js habit):
 * - aeadProtect false: SEIPDv1 with MDC, because GnuPG 2.2 (Debian 12) cannot read SEIPDv2 and
 *   the break-glass path is plain `gpg --decrypt`.
 * - no OpenPGP compression: the payload is already zstd-compressed.
 * - SHA-256 preferred for the signature over the data, not openpgp.js's default SHA-512: every
 *   OpenPGP implementation must support it, it is what RFC 9580 asks of an Ed25519 signature,
 *   and this machine's CPUs hash SHA-256 in hardware at about twice SHA-512's speed. openpgp.js
 *   takes it only where the signing key allows: a legacy EdDSA key (what gpg 2.2 makes for
 *   Ed25519) is signed with its curve's SHA-512 whatever this says (docs/performance.md).
 */
const ENCRYPT_CONFIG: openpgp.PartialConfig = {
  aeadProtect: false,
  preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed,
  preferredSymmetricAlgorithm: openpgp.enums.symmetric.aes256,
  preferredHashAlgorithm: openpgp.enums.hash.sha256,
};

/**
 * allowUnauthenticatedStream: decrypted bytes are released before the MDC at the end is
 * checked, which keeps memory flat for backups of any size. This is safe here only because
 * every consumer treats the output as provisional until the stream ends without error (restore
 * writes to a staging database that is dropped on any failure; the manifest's sha256 of the
 * stored object is checked too).
 */
const DECRYPT_CONFIG: openpgp.PartialConfig = { allowUnauthenticatedStream: true };

/** Who signs a new object, and the repository key the signature binds it to. */
export interface SignAs {
  readonly signer: SigningKey;
  readonly objectKey: string;
}

/**
 * Signs and encrypts a byte stream to every recipient in one OpenPGP message (one-pass
 * signature inside the encryption, as `gpg --sign --encrypt` makes), binary and gpg-compatible:
 * `gpg --decrypt` prints a good signature from the signer's fingerprint.
 */
export async function encryptStream(plain: Readable, recipients: RecipientSet, signAs: SignAs): Promise<Readable> {
  const message = await openpgp.createMessage({ binary: nodeToWeb(plain), format: 'binary' });
  const encrypted = await openpgp.encrypt({
    message,
    encryptionKeys: [...recipients.keys],
    signingKeys: [signAs.signer.key],
    signatureNotations: [objectNotation(signAs.objectKey)],
    format: 'binary',
    config: ENCRYPT_CONFIG,
  });
  return webToNode(encrypted as unknown as ReadableStream<Uint8Array>);
}

/**
 * The same message as encryptStream for bytes already in memory (a WAL segment). The symmetric
 * layer and the packet framing are done with node:crypto over the buffer in place, openpgp.js
 * choosing the session key, encrypting it to each recipient and making the signature
 * (segment-message.ts): about half the CPU of openpgp.encrypt on a buffer, which is itself ~25x
 * less than its stream path for a compressed 16 MiB segment (docs/performance.md). A choice
 * that path does not make (a recipient without AES, SEIPD v2) goes through openpgp.encrypt.
 */
export async function encryptBytes(plain: Uint8Array, recipients: RecipientSet, signAs: SignAs): Promise<Uint8Array> {
  const sealed = await sealBytes(plain, {
    encryptionKeys: recipients.keys,
    signingKey: signAs.signer.key,
    notation: objectNotation(signAs.objectKey),
    config: ENCRYPT_CONFIG,
  });
  return sealed ?? encryptBytesWithOpenPgp(plain, recipients, signAs);
}

/** encryptBytes by openpgp.js alone: for the shapes segment-message.ts does not make, and the tests' reference. */
export async function encryptBytesWithOpenPgp(plain: Uint8Array, recipients: RecipientSet, signAs: SignAs): Promise<Uint8Array> {
  const message = await openpgp.createMessage({ binary: plain, format: 'binary' });
  return openpgp.encrypt({
    message,
    encryptionKeys: [...recipients.keys],
    signingKeys: [signAs.signer.key],
    signatureNotations: [objectNotation(signAs.objectKey)],
    format: 'binary',
    config: ENCRYPT_CONFIG,
  });
}

/** Whose signatures a reader accepts, for which name. */
export interface VerifyAs {
  readonly trusted: TrustedSigners;
  readonly objectKey: string;
  /** Accept a message that carries no signature at all (explicit --allow-unsigned for old backups). */
  readonly allowUnsigned?: boolean;
}

export interface DecryptedStream {
  /** Provisional plaintext: the signature and MDC are known only once it was read to the end. */
  readonly plaintext: Readable;
  /** Settles after the plaintext was read to its end: the signer, or undefined for an allowed unsigned message. */
  readonly signature: Promise<SignatureFacts | undefined>;
}

/**
 * Decrypts a binary OpenPGP stream. Errors name the key problem: which key IDs the backup was
 * encrypted to and which private keys were given. Integrity failures (MDC, tampering) surface
 * as PMS_ERR_INTEGRITY when the stream ends.
 */
export async function decryptStream(encrypted: Readable, keys: DecryptionKeys, verifyAs: VerifyAs): Promise<DecryptedStream> {
  let message: openpgp.Message<ReadableStream<Uint8Array>>;
  // A source that fails while the header is read (a connection reset) is that failure, not a
  // malformed object: retrying may well succeed, so it must not be reported as corruption.
  let sourceError: unknown;
  const onSourceError = (error: unknown): void => {
    sourceError ??= error;
  };
  encrypted.once('error', onSourceError);
  try {
    message = await openpgp.readMessage({ binaryMessage: nodeToWeb(encrypted) });
  } catch (error) {
    if (sourceError !== undefined) throw sourceError;
    throw notOpenPgp(verifyAs.objectKey, error);
  }
  encrypted.off('error', onSourceError);
  checkDecryptionKey(message, keys);
  try {
    const result = await openpgp.decrypt({
      message,
      decryptionKeys: [...keys.keys],
      verificationKeys: [...verifyAs.trusted.keys],
      format: 'binary',
      config: DECRYPT_CONFIG,
    });
    const plaintext = webToNode(result.data as unknown as ReadableStream<Uint8Array>);
    // A stream that failed or was cut short has its story told by the stage that failed (MDC,
    // zstd, the consumer): the signature was simply never checked, which must not outrank it.
    const notChecked = (cause?: unknown) =>
      new PmsError('PMS_ERR_ABORTED', `the signature of ${verifyAs.objectKey} was not checked: the stream did not end`, { cause });
    const ended = new Promise<void>((resolve, reject) => {
      plaintext.once('end', resolve);
      plaintext.once('error', (error) => reject(classifyCipherError(error, verifyAs.objectKey) ?? notChecked(error)));
      plaintext.once('close', () => reject(notChecked()));
    });
    const signature = ended.then(async () => {
      if (result.signatures.length === 0 && verifyAs.allowUnsigned) return undefined;
      if (result.signatures.length === 0)
        throw untrusted(verifyAs.objectKey, 'it is not signed (made before signing was introduced? see --allow-unsigned)');
      return checkSignatures(result.signatures, verifyAs.trusted, verifyAs.objectKey);
    });
    signature.catch(() => undefined);
    return { plaintext, signature };
  } catch (error) {
    throw new PmsError('PMS_ERR_KEY', `decryption failed: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * The same message as decryptStream, whole in memory (a WAL segment: at most ~16 MiB). Nothing is
 * returned before every check passed: the MDC over the whole buffer, then the signature held to
 * checkSignatures' rule. Our own shape (sealBytes', which is also openpgp.encrypt's for a buffer)
 * is decrypted with node:crypto in place, openpgp.js decrypting the session key and verifying
 * the signature (segment-message.ts); any other (gpg's compressed messages, partial lengths,
 * SEIPD v2, unsigned, several signatures) is read by openpgp.decrypt in one call, as before.
 */
export async function decryptBytes(
  encrypted: Uint8Array,
  keys: DecryptionKeys,
  verifyAs: VerifyAs,
): Promise<{ readonly plaintext: Uint8Array; readonly signature: SignatureFacts | undefined }> {
  const session = async (pkesk: Uint8Array) => {
    let message: openpgp.Message<Uint8Array>;
    try {
      message = await openpgp.readMessage({ binaryMessage: pkesk });
    } catch (error) {
      throw notOpenPgp(verifyAs.objectKey, error);
    }
    checkDecryptionKey(message, keys);
    try {
      return await openpgp.decryptSessionKeys({ message, decryptionKeys: [...keys.keys] });
    } catch (error) {
      // As openpgp.decrypt's failure is read below: an altered PKESK can fail its key wrap's integrity check.
      throw cipherFailure(error, verifyAs.objectKey);
    }
  };
  let opened: Awaited<ReturnType<typeof openBytes>>;
  try {
    opened = await openBytes(encrypted, session, verifyAs.trusted.keys);
  } catch (error) {
    if (isPmsError(error)) throw error;
    throw cipherFailure(error, verifyAs.objectKey);
  }
  if (opened === undefined) return decryptBytesWithOpenPgp(encrypted, keys, verifyAs);
  return { plaintext: opened.plaintext, signature: await checkSignatures(opened.signatures, verifyAs.trusted, verifyAs.objectKey) };
}

/** decryptBytes by openpgp.js alone: every message shape openpgp.js reads. */
export async function decryptBytesWithOpenPgp(
  encrypted: Uint8Array,
  keys: DecryptionKeys,
  verifyAs: VerifyAs,
): Promise<{ readonly plaintext: Uint8Array; readonly signature: SignatureFacts | undefined }> {
  let message: openpgp.Message<Uint8Array>;
  try {
    message = await openpgp.readMessage({ binaryMessage: encrypted });
  } catch (error) {
    throw notOpenPgp(verifyAs.objectKey, error);
  }
  checkDecryptionKey(message, keys);
  let result: openpgp.DecryptMessageResult & { data: Uint8Array };
  try {
    result = await openpgp.decrypt({
      message,
      decryptionKeys: [...keys.keys],
      verificationKeys: [...verifyAs.trusted.keys],
      format: 'binary',
    });
  } catch (error) {
    throw cipherFailure(error, verifyAs.objectKey);
  }
  if (result.signatures.length === 0 && verifyAs.allowUnsigned) return { plaintext: result.data, signature: undefined };
  if (result.signatures.length === 0)
    throw untrusted(verifyAs.objectKey, 'it is not signed (made before signing was introduced? see --allow-unsigned)');
  return { plaintext: result.data, signature: await checkSignatures(result.signatures, verifyAs.trusted, verifyAs.objectKey) };
}

/** A failure inside decryption: integrity (MDC, tampering) as classifyCipherError names it, else a key problem. */
function cipherFailure(error: unknown, objectKey: string): PmsError {
  return (
    classifyCipherError(error, objectKey) ?? new PmsError('PMS_ERR_KEY', `decryption failed: ${(error as Error).message}`, { cause: error })
  );
}

function notOpenPgp(objectKey: string, error: unknown): PmsError {
  return new PmsError(
    'PMS_ERR_INTEGRITY',
    `${objectKey} failed its OpenPGP check (expected an OpenPGP message, found: ${(error as Error).message}): the stored object was modified or truncated; refusing it`,
    { cause: error, details: { key: objectKey, check: 'openpgp' } },
  );
}

/** Errors name the key problem: which key IDs the object was encrypted to and which private keys were given. */
function checkDecryptionKey(message: openpgp.Message<unknown>, keys: DecryptionKeys): void {
  const wanted = message.getEncryptionKeyIDs().map((id) => id.toHex().toUpperCase());
  const available = keys.descriptions.flatMap((d) => d.keyIds);
  if (!wanted.some((id) => available.includes(id))) {
    throw new PmsError(
      'PMS_ERR_KEY',
      `no private key for this backup: it was encrypted to key ID(s) ${wanted.join(', ') || '(none)'}, but BACKUP_GPG_PRIVATE_KEY_FILE holds ${keys.descriptions.map((d) => `${d.fingerprint} (subkeys ${d.keyIds.join(', ')})`).join('; ') || 'no keys'}`,
      { details: { encryptedTo: wanted, given: keys.descriptions.map((d) => d.fingerprint) } },
    );
  }
}

/**
 * Maps an openpgp failure surfacing mid-stream to a typed error, worded like every failed check
 * (pipeline/integrity-error.ts). An error that is already ours is returned as it is: the same
 * failure reaches several stages, and wrapping it again would repeat its sentence.
 */
export function classifyCipherError(error: unknown, key?: string): PmsError | undefined {
  if (isPmsError(error)) return error.code === 'PMS_ERR_INTEGRITY' ? error : undefined;
  if (!(error instanceof Error)) return undefined;
  if (/Modification detected|MDC|Error during parsing|Unexpected end of packet|integrity|Ciphertext/i.test(error.message)) {
    return new PmsError(
      'PMS_ERR_INTEGRITY',
      `${key ?? 'the object'} failed its OpenPGP integrity check (expected an intact OpenPGP message, found: ${error.message}): the stored object was modified or truncated; refusing it`,
      { cause: error, details: { ...(key ? { key } : {}), check: 'openpgp' } },
    );
  }
  return undefined;
}
