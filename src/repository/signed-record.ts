import { type SignatureFacts, type SigningKey, type TrustedSigners, signDetached, untrusted, verifyDetached } from '../crypto/signing.js';
import { isPmsError } from '../errors/catalogue.js';
import type { PutOptions, Storage } from '../storage/storage.js';

/**
 * Small records a consumer trusts (manifests, wal/system.json, audit records, verification
 * records) stay plain JSON, readable by people, with an armored detached OpenPGP signature
 * beside them under `<key>.sig`, bound to `<key>`. `gpg --verify manifest.json.sig manifest.json`
 * checks one by hand (docs/break-glass.md).
 */
/** A signature this old without its record was left by a writer that died between its two puts. */
const LEFTOVER_AGE_MS = 60_000;

export function signatureKey(key: string): string {
  return `${key}.sig`;
}

/**
 * A further signature of a record by another trusted key, one write-once object per signer. A
 * record that must outlive the key that first signed it (wal/system.json: written once, read for
 * as long as the archive exists) gets one from the key that replaces it, while both are still
 * trusted; after the old key is retired the co-signature proves the record (docs/key-rotation.md).
 */
export function cosignatureKey(key: string, fingerprint: string): string {
  return `${key}.${fingerprint.toUpperCase()}.sig`;
}

export function isSignatureKey(key: string): boolean {
  return key.endsWith('.sig');
}

/**
 * The signature goes first and the record second, so a record never appears without its
 * signature: the record's appearance is the commit, as before.
 */
export async function putSignedRecord(
  storage: Storage,
  key: string,
  body: Uint8Array | string,
  signer: SigningKey,
  options: PutOptions = {},
): Promise<void> {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const signature = await signDetached(bytes, signer, key);
  try {
    await storage.putBytes(signatureKey(key), signature, options);
  } catch (error) {
    if (!(options.ifAbsent && isPmsError(error, 'PMS_ERR_TARGET_EXISTS'))) throw error;
    // A signature without its record: another writer is between its two puts (it will commit
    // its record: we lost), or one died there. Only a leftover older than any writer's gap
    // between the two puts is replaced (never deleted: writers may not delete under the bucket
    // policies); write-once holds for the record, which is what counts.
    const [record, leftover] = await Promise.all([storage.head(key), storage.head(signatureKey(key))]);
    if (record !== undefined || leftover === undefined || Date.now() - leftover.modifiedAt.getTime() < LEFTOVER_AGE_MS) throw error;
    const { ifAbsent: _, ...overwrite } = options;
    await storage.putBytes(signatureKey(key), signature, overwrite);
  }
  await storage.putBytes(key, bytes, options);
}

export interface SignedRecord {
  readonly bytes: Buffer;
  /** Undefined only when the record is unsigned and the caller allowed that. */
  readonly signature: SignatureFacts | undefined;
}

/**
 * Reads a record and proves it: signed by a trusted key, for this very name. Throws
 * PMS_ERR_NOT_FOUND when the record is absent and PMS_ERR_UNTRUSTED when its signature is
 * missing, bad or not ours.
 */
export async function readSignedRecord(
  storage: Storage,
  key: string,
  trusted: TrustedSigners,
  options: { allowUnsigned?: boolean; cosigned?: boolean } = {},
): Promise<SignedRecord> {
  const bytes = await storage.getBytes(key);
  let armored: string;
  try {
    armored = (await storage.getBytes(signatureKey(key))).toString('utf8');
  } catch (error) {
    if (!isPmsError(error, 'PMS_ERR_NOT_FOUND')) throw error;
    if (options.allowUnsigned) return { bytes, signature: undefined };
    throw untrusted(key, `it is not signed (no ${signatureKey(key)})`);
  }
  try {
    return { bytes, signature: await verifyDetached(bytes, armored, trusted, key) };
  } catch (error) {
    if (!options.cosigned || !isPmsError(error, 'PMS_ERR_UNTRUSTED')) throw error;
    // Only co-signatures of keys trusted now are looked for: one per trusted key, none listed.
    for (const fingerprint of trusted.descriptions.map((d) => d.fingerprint)) {
      const cosignature = await storage.getBytes(cosignatureKey(key, fingerprint)).catch((missing: unknown) => {
        if (isPmsError(missing, 'PMS_ERR_NOT_FOUND')) return undefined;
        throw missing;
      });
      if (cosignature === undefined) continue;
      const facts = await verifyDetached(bytes, cosignature.toString('utf8'), trusted, key).catch(() => undefined);
      if (facts !== undefined) return { bytes, signature: facts };
    }
    throw error;
  }
}

/**
 * Adds `signer`'s co-signature to a record whose bytes the caller has just verified (never to
 * bytes it has not). Write-once: a co-signature already there (a concurrent writer) is kept.
 */
export async function cosignRecord(storage: Storage, key: string, bytes: Uint8Array, signer: SigningKey): Promise<'added' | 'present'> {
  const target = cosignatureKey(key, signer.description.fingerprint);
  if ((await storage.head(target)) !== undefined) return 'present';
  try {
    await storage.putBytes(target, await signDetached(bytes, signer, key), { ifAbsent: true });
    return 'added';
  } catch (error) {
    if (isPmsError(error, 'PMS_ERR_TARGET_EXISTS')) return 'present';
    throw error;
  }
}
