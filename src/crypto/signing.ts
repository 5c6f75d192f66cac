import { readFile } from 'node:fs/promises';
import * as openpgp from 'openpgp';
import { PmsError } from '../errors/catalogue.js';
import { type KeyDescription, describeKey, refusePrivateKeys } from './keys.js';

/**
 * The notation every signature of ours carries: the repository key the signed bytes were
 * written under. It is in the signature's hashed area, so a genuine object copied under another
 * name (a segment renamed, another backup's manifest) no longer verifies as that name.
 */
export const OBJECT_NOTATION = 'object@pms-data-platform.invalid';

/** The key producers sign with (BACKUP_SIGNING_KEY_FILE), unlocked. */
export interface SigningKey {
  readonly key: openpgp.PrivateKey;
  readonly description: KeyDescription;
}

/** Public keys whose signatures consumers accept (BACKUP_TRUSTED_SIGNERS_FILE). */
export interface TrustedSigners {
  readonly keys: readonly openpgp.PublicKey[];
  readonly descriptions: readonly KeyDescription[];
  /** Fingerprints of trusted signers that may sign only wal/ objects (BACKUP_WAL_SIGNER_FINGERPRINTS). */
  readonly walOnly: ReadonlySet<string>;
}

/** openpgp's per-signature result (not exported by its types under this name). */
type VerificationResult = Awaited<ReturnType<typeof openpgp.verify>>['signatures'][number];

/** What a consumer accepts: objects signed by one of `trusted`, and unsigned ones only when allowed explicitly. */
export interface TrustPolicy {
  readonly trusted: TrustedSigners;
  /** Accept an object without any signature (--allow-unsigned, for backups made before signing; audited). */
  readonly allowUnsigned?: boolean;
}

/** What a verified signature proved. */
export interface SignatureFacts {
  /** Fingerprint of the trusted primary key that signed. */
  readonly signer: string;
  /** The repository key the signer bound the bytes to. */
  readonly object: string;
  readonly signedAt: string;
}

function armorBlocks(text: string, kind: 'PUBLIC' | 'PRIVATE'): string[] {
  const pattern = new RegExp(`-----BEGIN PGP ${kind} KEY BLOCK-----[\\s\\S]*?-----END PGP ${kind} KEY BLOCK-----`, 'g');
  return text.match(pattern) ?? [text];
}

async function readText(path: string, variable: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new PmsError('PMS_ERR_KEY', `${variable}: cannot read ${what} file ${path} (${reason})`, { cause: error });
  }
}

/**
 * Loads and unlocks the signing key. It must be able to sign now: an expired or revoked key,
 * or one without a signing-capable (sub)key, is refused before anything is written.
 */
export async function loadSigningKey(file: string, passphraseFile: string | undefined, now = new Date()): Promise<SigningKey> {
  const armored = await readText(file, 'BACKUP_SIGNING_KEY_FILE', 'signing key');
  let keys: openpgp.PrivateKey[];
  try {
    keys = (await Promise.all(armorBlocks(armored, 'PRIVATE').map((block) => openpgp.readPrivateKeys({ armoredKeys: block })))).flat();
  } catch (error) {
    throw new PmsError(
      'PMS_ERR_KEY',
      `BACKUP_SIGNING_KEY_FILE: ${file} holds no readable armored OpenPGP secret key (${(error as Error).message})`,
      {
        cause: error,
      },
    );
  }
  if (keys.length !== 1) {
    throw new PmsError(
      'PMS_ERR_KEY',
      `BACKUP_SIGNING_KEY_FILE: ${file} holds ${keys.length} secret keys; give exactly the one this job signs with`,
    );
  }
  let key = keys[0]!;
  if (!key.isDecrypted()) {
    if (passphraseFile === undefined) {
      throw new PmsError(
        'PMS_ERR_KEY',
        `signing key ${key.getFingerprint().toUpperCase()} is passphrase-protected: set BACKUP_SIGNING_PASSPHRASE_FILE`,
      );
    }
    const passphrase = (await readText(passphraseFile, 'BACKUP_SIGNING_PASSPHRASE_FILE', 'passphrase')).replace(/\r?\n$/, '');
    try {
      key = await openpgp.decryptKey({ privateKey: key, passphrase });
    } catch (error) {
      throw new PmsError(
        'PMS_ERR_KEY',
        `the passphrase in BACKUP_SIGNING_PASSPHRASE_FILE does not unlock signing key ${key.getFingerprint().toUpperCase()}`,
        { cause: error },
      );
    }
  }
  const description = await describeKey(key, now);
  try {
    await key.getSigningKey(undefined, now);
  } catch (error) {
    throw new PmsError(
      description.expired ? 'PMS_ERR_KEY_EXPIRED' : 'PMS_ERR_KEY',
      description.expired
        ? `signing key ${description.fingerprint} expired on ${description.expiresAt}: rotate it (docs/key-rotation.md)`
        : `key ${description.fingerprint} in BACKUP_SIGNING_KEY_FILE cannot sign (${(error as Error).message}): use a key with a signing (sub)key`,
      { cause: error, details: { fingerprint: description.fingerprint } },
    );
  }
  return { key, description };
}

/**
 * Loads the trusted signers. Secret keys are refused: the file is meant for every consumer, and a
 * signing key there would let any consumer forge.
 */
export async function loadTrustedSigners(file: string, now = new Date(), walOnly: readonly string[] = []): Promise<TrustedSigners> {
  const armored = await readText(file, 'BACKUP_TRUSTED_SIGNERS_FILE', 'trusted signers');
  // Matches the armor of a secret key export (gpg calls it PRIVATE, RFC 9580 SECRET).
  if (/-----BEGIN PGP (PRIVATE|SECRET) KEY BLOCK-----/.test(armored)) {
    throw new PmsError(
      'PMS_ERR_KEY',
      `BACKUP_TRUSTED_SIGNERS_FILE: ${file} holds a secret key; it must hold public keys only (gpg --armor --export FINGERPRINT)`,
    );
  }
  let keys: openpgp.PublicKey[];
  try {
    keys = (
      await Promise.all(armorBlocks(armored, 'PUBLIC').map((block) => openpgp.readKeys({ armoredKeys: block })))
    ).flat() as openpgp.PublicKey[];
  } catch (error) {
    throw new PmsError(
      'PMS_ERR_KEY',
      `BACKUP_TRUSTED_SIGNERS_FILE: ${file} holds no readable armored OpenPGP public key (${(error as Error).message})`,
      { cause: error },
    );
  }
  refusePrivateKeys(keys, file, 'BACKUP_TRUSTED_SIGNERS_FILE', 'the trusted signers are public, mounted into every consumer');
  const descriptions = await Promise.all(keys.map((k) => describeKey(k, now)));
  const unknown = walOnly.filter((f) => !descriptions.some((d) => d.fingerprint === f));
  if (unknown.length > 0) {
    throw new PmsError(
      'PMS_ERR_KEY',
      `BACKUP_WAL_SIGNER_FINGERPRINTS names ${unknown.join(', ')}, which ${unknown.length === 1 ? 'is' : 'are'} not in BACKUP_TRUSTED_SIGNERS_FILE ${file}`,
    );
  }
  return { keys, descriptions, walOnly: new Set(walOnly) };
}

export function objectNotation(objectKey: string): openpgp.RawNotation {
  return { name: OBJECT_NOTATION, value: new TextEncoder().encode(objectKey), humanReadable: true, critical: false };
}

/** An armored detached signature over `bytes`, bound to `objectKey`. */
export async function signDetached(bytes: Uint8Array, signer: SigningKey, objectKey: string): Promise<string> {
  const message = await openpgp.createMessage({ binary: bytes, format: 'binary' });
  return openpgp.sign({
    message,
    signingKeys: [signer.key],
    detached: true,
    format: 'armored',
    signatureNotations: [objectNotation(objectKey)],
  });
}

/**
 * The same detached signature as one base64 line (the binary packet, no armor): small and
 * printable enough for object metadata, where S3 allows 2 KiB of printable ASCII in all.
 */
export async function signDetachedCompact(bytes: Uint8Array, signer: SigningKey, objectKey: string): Promise<string> {
  const message = await openpgp.createMessage({ binary: bytes, format: 'binary' });
  const signature = await openpgp.sign({
    message,
    signingKeys: [signer.key],
    detached: true,
    format: 'binary',
    signatureNotations: [objectNotation(objectKey)],
  });
  return Buffer.from(signature as Uint8Array).toString('base64');
}

/** Verifies a signature made by signDetachedCompact; throws PMS_ERR_UNTRUSTED otherwise. */
export async function verifyDetachedCompact(
  bytes: Uint8Array,
  base64Signature: string,
  trusted: TrustedSigners,
  objectKey: string,
): Promise<SignatureFacts> {
  return verifyDetached(bytes, { binary: Buffer.from(base64Signature, 'base64') }, trusted, objectKey);
}

/** Verifies a detached signature made by signDetached; throws PMS_ERR_UNTRUSTED otherwise. */
export async function verifyDetached(
  bytes: Uint8Array,
  armoredSignature: string | { readonly binary: Uint8Array },
  trusted: TrustedSigners,
  objectKey: string,
): Promise<SignatureFacts> {
  let signature: openpgp.Signature;
  try {
    signature =
      typeof armoredSignature === 'string'
        ? await openpgp.readSignature({ armoredSignature })
        : await openpgp.readSignature({ binarySignature: armoredSignature.binary });
  } catch (error) {
    throw untrusted(objectKey, `its signature is not a readable OpenPGP signature (${(error as Error).message})`);
  }
  const message = await openpgp.createMessage({ binary: bytes, format: 'binary' });
  const result = await openpgp.verify({ message, signature, verificationKeys: [...trusted.keys], format: 'binary' });
  return checkSignatures(result.signatures, trusted, objectKey);
}

/**
 * The one rule for a signed object: exactly one signature, made by a trusted key, valid, and
 * bound to the name the object was read under. Used for detached signatures and for the
 * signature inside a signed-and-encrypted message (after its data was read to the end).
 */
export async function checkSignatures(
  signatures: ReadonlyArray<VerificationResult>,
  trusted: TrustedSigners,
  objectKey: string,
): Promise<SignatureFacts> {
  if (signatures.length === 0) throw untrusted(objectKey, 'it is not signed');
  if (signatures.length > 1) throw untrusted(objectKey, `it carries ${signatures.length} signatures; ours carry exactly one`);
  const [only] = signatures;
  const packet = (await only!.signature.catch(() => undefined))?.packets[0];
  const issuer = packet?.issuerFingerprint
    ? Buffer.from(packet.issuerFingerprint).toString('hex').toUpperCase()
    : only!.keyID.toHex().toUpperCase();
  const signer = trusted.keys.find((k) => k.getKeys().some((sub) => sub.getKeyID().equals(only!.keyID)));
  if (signer === undefined) {
    throw untrusted(objectKey, `it is signed by ${issuer}, which is not in BACKUP_TRUSTED_SIGNERS_FILE`, issuer);
  }
  const fingerprint = signer.getFingerprint().toUpperCase();
  // The database server's key may forge WAL at worst: never a backup, a record or an audit entry.
  if (trusted.walOnly.has(fingerprint) && !objectKey.startsWith('wal/')) {
    throw untrusted(
      objectKey,
      `it is signed by ${fingerprint}, a WAL signing key (BACKUP_WAL_SIGNER_FINGERPRINTS), which may sign only wal/ objects`,
      fingerprint,
    );
  }
  try {
    await only!.verified;
  } catch (error) {
    throw untrusted(objectKey, `its signature by ${fingerprint} does not verify (${(error as Error).message})`, fingerprint);
  }
  const bound = packet?.rawNotations.find((n: openpgp.RawNotation) => n.name === OBJECT_NOTATION);
  const object = bound ? new TextDecoder().decode(bound.value) : undefined;
  if (object !== objectKey) {
    throw untrusted(
      objectKey,
      object === undefined
        ? `its signature by ${fingerprint} names no object`
        : `its signature by ${fingerprint} was made for ${object}: a genuine object copied under another name`,
      fingerprint,
    );
  }
  return { signer: fingerprint, object, signedAt: (packet?.created ?? new Date(0)).toISOString() };
}

export function untrusted(objectKey: string, reason: string, signer?: string): PmsError {
  return new PmsError('PMS_ERR_UNTRUSTED', `${objectKey} is not trusted: ${reason}; refusing it`, {
    details: { key: objectKey, ...(signer ? { signer } : {}) },
  });
}

/** What `keys` and `doctor` report about the signing side. */
export interface SigningReport {
  readonly signing: (KeyDescription & { readonly canSign: boolean; readonly trusted: boolean }) | null;
  readonly trusted: readonly KeyDescription[];
  /** Each problem in one sentence with what to do; empty when all is well. */
  readonly problems: readonly string[];
}

/**
 * Checks the signing key and the trusted signers together: the key loads, unlocks and makes a
 * signature that the trusted signers accept (so what this job writes will be readable by the
 * consumers), and no key expires within `warnDays`.
 */
export async function inspectSigning(
  files: {
    signingKeyFile?: string | undefined;
    signingPassphraseFile?: string | undefined;
    trustedSignersFile?: string | undefined;
    walSignerFingerprints?: readonly string[];
  },
  warnDays: number,
  now = new Date(),
): Promise<SigningReport> {
  const problems: string[] = [];
  let trusted: TrustedSigners | undefined;
  if (files.trustedSignersFile) {
    try {
      trusted = await loadTrustedSigners(files.trustedSignersFile, now, files.walSignerFingerprints ?? []);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  let signing: SigningReport['signing'] = null;
  if (files.signingKeyFile) {
    try {
      const key = await loadSigningKey(files.signingKeyFile, files.signingPassphraseFile, now);
      const probe = Buffer.from('pms-backup signing probe');
      // A WAL-only key may sign only under wal/: probe with a name it is allowed to sign.
      const probeKey = trusted?.walOnly.has(key.description.fingerprint) ? 'wal/probe' : 'probe';
      const signature = await signDetached(probe, key, probeKey);
      let accepted = false;
      if (trusted) {
        accepted = await verifyDetached(probe, signature, trusted, probeKey).then(
          () => true,
          () => false,
        );
        if (!accepted) {
          problems.push(
            `signing key ${key.description.fingerprint} is not in BACKUP_TRUSTED_SIGNERS_FILE: consumers would refuse everything it signs; add its public key (gpg --armor --export ${key.description.fingerprint})`,
          );
        }
      }
      signing = { ...key.description, canSign: true, trusted: accepted };
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  const soon = now.getTime() + warnDays * 86_400_000;
  for (const key of [...(signing ? [signing] : []), ...(trusted?.descriptions ?? [])]) {
    if (key.expiresAt !== null && Date.parse(key.expiresAt) <= soon) {
      problems.push(
        `${key.secret ? 'signing key' : 'trusted signer'} ${key.fingerprint} ${key.expired ? 'expired' : 'expires'} on ${key.expiresAt.slice(0, 10)}: rotate it (docs/key-rotation.md)`,
      );
    }
  }
  return { signing, trusted: trusted?.descriptions ?? [], problems: [...new Set(problems)] };
}
