import {
  type SignatureFacts,
  type SigningKey,
  type TrustedSigners,
  signDetachedCompact,
  verifyDetachedCompact,
} from '../crypto/signing.js';
import { isPmsError } from '../errors/catalogue.js';
import type { ObjectInfo, Storage } from '../storage/storage.js';
import { WAL_PREFIX, walFileOfKey } from './wal-layout.js';

/**
 * A WAL object's signature that a consumer without the decryption key can check (copy, monitor).
 *
 * The signature inside the encryption proves a segment to wal-fetch, which decrypts it; copy and
 * monitor hold no private key and would otherwise take any object made with the public key alone
 * for WAL. So wal-push also signs a statement binding the name to the exact stored bytes,
 *
 *   pms-wal-object v1\n<key>\n<sha256 of the stored (encrypted) bytes>\n<stored bytes>\n
 *
 * with the WAL signing key (the signature also names <key> in its notation, as all of ours do),
 * and stores it in the object's own metadata: written by the same PUT as the object (atomic on
 * S3, write-once with it under If-None-Match and Object Lock, carried by copy with the object),
 * never a second object that could go missing or be swapped alone. A checker needs no bytes: the
 * HEAD gives the size and the signed sha256, and copy, which streams the bytes anyway, checks
 * them against it.
 */
export const WAL_OBJECT_METADATA = {
  /** sha256 of the stored bytes, as signed (hex). */
  storedSha256: 'pms-wal-object-sha256',
  /** The compact detached signature over the statement (base64 of the binary packet). */
  signature: 'pms-wal-object-sig',
} as const;

const STATEMENT_VERSION = 'pms-wal-object v1';

export interface StoredBytes {
  readonly sha256: string;
  readonly bytes: number;
}

export function walObjectStatement(key: string, stored: StoredBytes): Uint8Array {
  return Buffer.from(`${STATEMENT_VERSION}\n${key}\n${stored.sha256}\n${stored.bytes}\n`, 'utf8');
}

/** The metadata entries that seal a WAL object's stored bytes under its name. */
export async function sealWalObject(key: string, stored: StoredBytes, signer: SigningKey): Promise<Record<string, string>> {
  return {
    [WAL_OBJECT_METADATA.storedSha256]: stored.sha256,
    [WAL_OBJECT_METADATA.signature]: await signDetachedCompact(walObjectStatement(key, stored), signer, key),
  };
}

/**
 * What a keyless consumer may believe about one WAL object:
 * - `trusted`: a trusted key signed this name with exactly this size and sha256 (`expected`);
 * - `unsigned`: no sealed signature at all (archived before wal-push sealed objects, or planted);
 * - `untrusted`: a signature that is bad, by an unknown key, or made for another name or size.
 */
export type WalObjectVerdict =
  | {
      readonly status: 'trusted';
      readonly key: string;
      readonly facts: SignatureFacts;
      readonly expected: StoredBytes;
      readonly modifiedAt: Date;
    }
  | { readonly status: 'unsigned'; readonly key: string; readonly modifiedAt: Date }
  | { readonly status: 'untrusted'; readonly key: string; readonly reason: string; readonly signer?: string };

/** Checks a WAL object's sealed signature from its metadata (as a HEAD returns it). */
export async function checkWalObject(info: ObjectInfo, trusted: TrustedSigners): Promise<WalObjectVerdict> {
  const signature = info.metadata[WAL_OBJECT_METADATA.signature];
  const sha256 = info.metadata[WAL_OBJECT_METADATA.storedSha256];
  if (signature === undefined && sha256 === undefined) return { status: 'unsigned', key: info.key, modifiedAt: info.modifiedAt };
  if (signature === undefined || sha256 === undefined || !/^[0-9a-f]{64}$/.test(sha256)) {
    return { status: 'untrusted', key: info.key, reason: `${info.key} is not trusted: its sealed signature is incomplete` };
  }
  const expected = { sha256, bytes: info.bytes };
  try {
    const facts = await verifyDetachedCompact(walObjectStatement(info.key, expected), signature, trusted, info.key);
    return { status: 'trusted', key: info.key, facts, expected, modifiedAt: info.modifiedAt };
  } catch (error) {
    if (!isPmsError(error, 'PMS_ERR_UNTRUSTED')) throw error;
    const signer = error.details?.['signer'];
    return {
      status: 'untrusted',
      key: info.key,
      reason: error.message,
      ...(typeof signer === 'string' ? { signer } : {}),
    };
  }
}

export interface WalTrustSurvey {
  readonly trusted: ReadonlyMap<string, Extract<WalObjectVerdict, { status: 'trusted' }>>;
  /** Unsigned objects stored before the oldest sealed one: archived before sealing began (kept, never trusted for age). */
  readonly legacy: ReadonlyMap<string, Extract<WalObjectVerdict, { status: 'unsigned' }>>;
  /** Bad or foreign signatures, and unsigned objects stored after sealing began. */
  readonly untrusted: ReadonlyMap<string, { readonly reason: string; readonly signer?: string }>;
}

/**
 * Checks every WAL object (segments, history, backup history, partials) under wal/. Objects
 * without a sealed signature are *legacy* while they were stored before the oldest object whose
 * seal verified (the storage's own time, which a writer of the bucket cannot set on S3), and
 * untrusted once sealing had begun: a genuine wal-push seals everything it stores. With no
 * sealed object at all, every unsigned object is legacy (an archive from before this change).
 * A listing may lack metadata (S3 lists carry none): then each object is HEADed, `concurrency` at once.
 */
export async function surveyWalTrust(storage: Storage, trusted: TrustedSigners, concurrency = 8): Promise<WalTrustSurvey> {
  const objects: ObjectInfo[] = [];
  for await (const object of storage.list(WAL_PREFIX)) if (walFileOfKey(object.key) !== undefined) objects.push(object);
  const verdicts: WalObjectVerdict[] = [];
  const queue = [...objects];
  const worker = async (): Promise<void> => {
    for (let object = queue.shift(); object !== undefined; object = queue.shift()) {
      const info = object.metadata[WAL_OBJECT_METADATA.signature] !== undefined ? object : await storage.head(object.key);
      if (info !== undefined) verdicts.push(await checkWalObject(info, trusted));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return classify(verdicts);
}

export function classify(verdicts: readonly WalObjectVerdict[]): WalTrustSurvey {
  const trusted = new Map<string, Extract<WalObjectVerdict, { status: 'trusted' }>>();
  const unsigned: Extract<WalObjectVerdict, { status: 'unsigned' }>[] = [];
  const untrusted = new Map<string, { reason: string; signer?: string }>();
  for (const verdict of verdicts) {
    if (verdict.status === 'trusted') trusted.set(verdict.key, verdict);
    else if (verdict.status === 'unsigned') unsigned.push(verdict);
    else untrusted.set(verdict.key, { reason: verdict.reason, ...(verdict.signer ? { signer: verdict.signer } : {}) });
  }
  // Storage times on both sides: one clock, and not one a writer of the bucket sets (on S3).
  const sealingBegan = Math.min(...[...trusted.values()].map((v) => v.modifiedAt.getTime()));
  const legacy = new Map<string, Extract<WalObjectVerdict, { status: 'unsigned' }>>();
  for (const verdict of unsigned) {
    if (verdict.modifiedAt.getTime() < sealingBegan) legacy.set(verdict.key, verdict);
    else
      untrusted.set(verdict.key, {
        reason: `${verdict.key} is not trusted: it carries no sealed signature but was stored after wal-push began sealing WAL objects`,
      });
  }
  return { trusted, legacy, untrusted };
}
