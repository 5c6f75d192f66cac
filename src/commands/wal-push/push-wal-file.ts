import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { startCompressor } from '../../compression/zstd.js';
import type { RecipientSet } from '../../crypto/keys.js';
import type { SigningKey, TrustPolicy } from '../../crypto/signing.js';
import { PmsError, isPmsError } from '../../errors/catalogue.js';
import type { Storage } from '../../storage/storage.js';
import { ByteMeter, EndGate } from '../../streams/byte-meter.js';
import { parseWalFileName } from '../../wal/wal-file-name.js';
import { claimArchive } from '../../repository/wal-identity.js';
import { WAL_METADATA, walObjectKey } from '../../repository/wal-layout.js';
import { sealWalObject } from '../../repository/wal-object-signature.js';
import { readSegmentHeader } from '../../wal/wal-page-header.js';
import { storeEncrypted } from '../../pipeline/store-encrypted.js';
import { linkAbort } from '../../process/linked-abort.js';

export interface WalPushContext {
  readonly storage: Storage;
  readonly recipients: RecipientSet;
  /** The database server's WAL signing key (BACKUP_SIGNING_KEY_FILE in the PostgreSQL pod). */
  readonly signer: SigningKey;
  /** Whose signature wal/system.json must carry. */
  readonly trust: TrustPolicy;
  readonly zstdLevel?: number;
  readonly signal?: AbortSignal;
  /** Systems already checked against wal/system.json in this run (one lookup per run). */
  readonly claimedSystems?: Set<string>;
}

export interface PushedWalFile {
  readonly name: string;
  readonly key: string;
  /** `already-archived`: the same name with the same content was stored before (a retry). */
  readonly outcome: 'stored' | 'already-archived';
  readonly bytes: number;
  readonly sha256: string;
}

export async function sha256OfFile(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * Archives one file PostgreSQL handed to archive_command: file → zstd → OpenPGP → repository,
 * with the plaintext sha256 and a sealed signature over the stored bytes in the object's
 * metadata (one PUT; the object is held in memory whole, at most a compressed 16 MiB). Returns only once the object is durably
 * stored. A file already archived under its name is accepted when the content is identical
 * (PostgreSQL retries after a crash between our exit and its bookkeeping) and refused loudly
 * otherwise: two different histories under one name means a second cluster or a split brain.
 */
export async function pushWalFile(context: WalPushContext, path: string): Promise<PushedWalFile> {
  const { storage } = context;
  const name = basename(path);
  const file = parseWalFileName(name);
  if (file === undefined) {
    throw new PmsError(
      'PMS_ERR_USAGE',
      `${name} is not a WAL segment, .partial, .backup or .history file name: wal-push is meant to be archive_command = 'pms-backup wal-push %p'`,
    );
  }
  const plain = await sha256OfFile(path).catch((error: unknown) => {
    throw new PmsError(
      'PMS_ERR_NOT_FOUND',
      `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)}): archive_command runs in the data directory and %p must name a file in pg_wal`,
      { cause: error },
    );
  });
  const metadata: Record<string, string> = {
    [WAL_METADATA.sha256]: plain.sha256,
    [WAL_METADATA.bytes]: String(plain.bytes),
    [WAL_METADATA.name]: name,
  };
  if (file.kind === 'segment' || file.kind === 'partial') {
    const header = await readSegmentHeader(path, name);
    if (!context.claimedSystems?.has(header.systemIdentifier)) {
      await claimArchive(storage, header.systemIdentifier, context.signer, context.trust);
      context.claimedSystems?.add(header.systemIdentifier);
    }
    metadata[WAL_METADATA.systemIdentifier] = header.systemIdentifier;
  }
  const key = walObjectKey(file, plain.sha256);
  const existing = await storage.head(key);
  if (existing !== undefined) {
    const stored = existing.metadata[WAL_METADATA.sha256];
    if (stored === plain.sha256) return { name, key, outcome: 'already-archived', bytes: plain.bytes, sha256: plain.sha256 };
    throw new PmsError(
      'PMS_ERR_WAL_CONFLICT',
      `${name} is already archived in ${storage.location} with ${stored === undefined ? 'no recorded checksum' : 'different content'}: refusing to overwrite it. Two servers may be archiving into one repository, or a restored server is reusing a timeline; give it its own BACKUP_REPOSITORY or investigate before deleting ${key}`,
      { details: { key, storedSha256: stored ?? null, newSha256: plain.sha256 } },
    );
  }

  const link = linkAbort(context.signal);
  const abort = link.controller;
  try {
    const zstd = startCompressor({ level: context.zstdLevel ?? 3, threads: 1, signal: abort.signal });
    const reread = new ByteMeter({ sha256: true });
    const toCompressor = pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), reread, zstd.child.stdin!);
    // Nothing may be committed unless zstd exited 0 and the file still hashes the same.
    const gate = new EndGate(async () => {
      await zstd.done;
      await toCompressor;
      if (reread.sha256 !== plain.sha256) {
        throw new PmsError('PMS_ERR_INTEGRITY', `${name} changed while it was being archived; PostgreSQL will retry it`);
      }
    });
    const stored = await storeEncrypted({
      storage,
      key,
      recipients: context.recipients,
      signer: context.signer,
      abort,
      metadata,
      // Copy and monitor hold no decryption key: the sealed signature lets them tell our WAL from a planted object.
      sealMetadata: (sealed) => sealWalObject(key, sealed, context.signer),
      source: zstd.child.stdout!.pipe(gate),
      alongside: [toCompressor, zstd.done],
    });
    return { name, key, outcome: 'stored', bytes: stored.storedBytes, sha256: plain.sha256 };
  } catch (error) {
    abort.abort(error);
    if (isPmsError(error)) throw error;
    throw new PmsError('PMS_ERR_INTERNAL', `archiving ${name} failed: ${(error as Error).message ?? String(error)}`, { cause: error });
  } finally {
    link.unlink();
  }
}
