import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { NATIVE_ZSTD, type SegmentZstd, compressBytes, compressFile } from '../../compression/zstd.js';
import type { RecipientSet } from '../../crypto/keys.js';
import type { SigningKey, TrustPolicy } from '../../crypto/signing.js';
import { PmsError, isPmsError } from '../../errors/catalogue.js';
import type { Storage } from '../../storage/storage.js';
import { parseWalFileName } from '../../wal/wal-file-name.js';
import { claimArchive } from '../../repository/wal-identity.js';
import { WAL_METADATA, walObjectKey } from '../../repository/wal-layout.js';
import { sealWalObject } from '../../repository/wal-object-signature.js';
import { parseSegmentHeader } from '../../wal/wal-page-header.js';
import { storeEncryptedBytes } from '../../pipeline/store-encrypted.js';
import { linkAbort } from '../../process/linked-abort.js';
import { type FileIdentity, fileIdentity, sameFile } from './push-marker.js';
export interface WalPushContext {
  readonly storage: Storage;
  readonly recipients: RecipientSet;
  /** The database server's WAL signing key (BACKUP_SIGNING_KEY_FILE in the PostgreSQL pod). */
  readonly signer: SigningKey;
  /** Whose signature wal/system.json must carry. */
  readonly trust: TrustPolicy;
  readonly zstdLevel?: number;
  /** How zstd runs: the background pusher's relay (it never forks itself); unset, a child of this process. */
  readonly zstd?: SegmentZstd | undefined;
  readonly signal?: AbortSignal;
  /**
   * Checks of wal/system.json per system in this run, done or under way: one lookup per run, and
   * concurrent pushes of a pusher wait for the same one (two first claims at once raced).
   */
  readonly claims?: Map<string, Promise<void>>;
}

export interface PushedWalFile {
  readonly name: string;
  readonly key: string;
  /** `already-archived`: the same name with the same content was stored before (a retry). */
  readonly outcome: 'stored' | 'already-archived';
  readonly bytes: number;
  readonly sha256: string;
  /** The file as it was read (unchanged from before to after reading): what a marker vouches for. */
  readonly identity: FileIdentity;
}

const CHUNK_BYTES = 1 << 20;

/** The file PostgreSQL handed over, or the error that says where %p must point. */
async function openSegment(path: string): Promise<Awaited<ReturnType<typeof open>>> {
  try {
    return await open(path, 'r');
  } catch (error) {
    throw new PmsError(
      'PMS_ERR_NOT_FOUND',
      `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)}): archive_command runs in the data directory and %p must name a file in pg_wal`,
      { cause: error },
    );
  }
}

/**
 * Hashes a file PostgreSQL handed over while zstd compresses it from the same path (the two run
 * on both cores), and proves it did not change meanwhile: same inode, size, mtime and ctime
 * before and after both reads (any write or truncate moves ctime). One 1 MiB buffer is reused:
 * allocating 16 MiB per segment cost more CPU than hashing it.
 */
async function readAndCompress(
  path: string,
  name: string,
  compress: () => Promise<Buffer>,
): Promise<{ sha256: string; bytes: number; head: Buffer; compressed: Buffer; identity: FileIdentity }> {
  const handle = await openSegment(path);
  try {
    const before: BigIntStats = await handle.stat({ bigint: true });
    const compressing = compress();
    compressing.catch(() => undefined);
    const hash = createHash('sha256');
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    let head = Buffer.alloc(0);
    let bytes = 0;
    for (;;) {
      const { bytesRead } = await handle.read(chunk, 0, CHUNK_BYTES, bytes);
      if (bytesRead === 0) break;
      if (bytes === 0) head = Buffer.from(chunk.subarray(0, Math.min(bytesRead, 64)));
      hash.update(chunk.subarray(0, bytesRead));
      bytes += bytesRead;
    }
    const compressed = await compressing;
    const after: BigIntStats = await handle.stat({ bigint: true });
    const identity = fileIdentity(before);
    if (!sameFile(identity, fileIdentity(after)) || BigInt(bytes) !== before.size) {
      throw new PmsError('PMS_ERR_INTEGRITY', `${name} changed while it was being archived; PostgreSQL will retry it`);
    }
    return { sha256: hash.digest('hex'), bytes, head, compressed, identity };
  } finally {
    await handle.close();
  }
}

/** Whole-segment read buffers of readHashAndCompress, reused (one per concurrent push): a fresh 16 MiB buffer is 4096 first-touch page faults. */
const spareSegmentBuffers: Buffer[] = [];
const SEGMENT_BUFFER_BYTES = 16 * 1024 * 1024;

/**
 * The same as readAndCompress where zlib has zstd (Node >= 22.15): the file is read once into
 * a reused buffer and hashed, proven unchanged (the same identity before and after the read),
 * and then exactly those bytes are compressed on the thread pool. One read of the file instead
 * of two, and no zstd process.
 */
async function readHashAndCompress(
  path: string,
  name: string,
  level: number,
): Promise<{ sha256: string; bytes: number; head: Buffer; compressed: Buffer; identity: FileIdentity }> {
  const handle = await openSegment(path);
  try {
    const before: BigIntStats = await handle.stat({ bigint: true });
    const size = Number(before.size);
    const pooled = size <= SEGMENT_BUFFER_BYTES;
    const plain = pooled ? (spareSegmentBuffers.pop() ?? Buffer.allocUnsafe(SEGMENT_BUFFER_BYTES)) : Buffer.allocUnsafe(size + 1);
    let bytes = 0;
    // Reads until end of file (one byte more than stat said is room enough to see a file that grew).
    for (;;) {
      const { bytesRead } = await handle.read(plain, bytes, Math.min(CHUNK_BYTES, plain.length - bytes), bytes);
      if (bytesRead === 0 || bytes + bytesRead === plain.length) {
        bytes += bytesRead;
        break;
      }
      bytes += bytesRead;
    }
    const after: BigIntStats = await handle.stat({ bigint: true });
    const identity = fileIdentity(before);
    if (!sameFile(identity, fileIdentity(after)) || BigInt(bytes) !== before.size) {
      throw new PmsError('PMS_ERR_INTEGRITY', `${name} changed while it was being archived; PostgreSQL will retry it`);
    }
    const content = plain.subarray(0, bytes);
    const sha256 = createHash('sha256').update(content).digest('hex');
    const head = Buffer.from(content.subarray(0, Math.min(bytes, 64)));
    const compressed = await compressBytes(content, level);
    if (pooled && spareSegmentBuffers.length < 4) spareSegmentBuffers.push(plain);
    return { sha256, bytes, head, compressed, identity };
  } finally {
    await handle.close();
  }
}

/**
 * Archives one file PostgreSQL handed to archive_command: file → zstd → OpenPGP → repository,
 * with the plaintext sha256 and a sealed signature over the stored bytes in the object's
 * metadata, in one write-once PUT. zstd reads the file while Node hashes it; the compressed
 * segment (at most ~16 MiB) is encrypted by openpgp.js as one buffer, which costs a fraction of
 * the streamed path (docs/performance.md). Returns only once the object is durably stored. A file already archived
 * under its name is accepted when the content is identical (PostgreSQL retries after a crash
 * between our exit and its bookkeeping) and refused loudly otherwise: two different histories
 * under one name means a second cluster or a split brain.
 */
export async function pushWalFile(context: WalPushContext, path: string): Promise<PushedWalFile> {
  const name = basename(path);
  const file = parseWalFileName(name);
  if (file === undefined) {
    throw new PmsError(
      'PMS_ERR_USAGE',
      `${name} is not a WAL segment, .partial, .backup or .history file name: wal-push is meant to be archive_command = 'pms-backup wal-push %p'`,
    );
  }
  const link = linkAbort(context.signal);
  const abort = link.controller;
  try {
    return await archive(context, path, name, file, abort);
  } catch (error) {
    abort.abort(error);
    if (isPmsError(error)) throw error;
    throw new PmsError('PMS_ERR_INTERNAL', `archiving ${name} failed: ${(error as Error).message ?? String(error)}`, { cause: error });
  } finally {
    link.unlink();
  }
}

async function archive(
  context: WalPushContext,
  path: string,
  name: string,
  file: NonNullable<ReturnType<typeof parseWalFileName>>,
  abort: AbortController,
): Promise<PushedWalFile> {
  const { storage } = context;
  const level = context.zstdLevel ?? WAL_ZSTD_LEVEL;
  const { sha256, bytes, head, compressed, identity } =
    NATIVE_ZSTD && context.zstd === undefined
      ? await readHashAndCompress(path, name, level)
      : await readAndCompress(path, name, () => compressFile(path, { level, signal: abort.signal, via: context.zstd }));
  const metadata: Record<string, string> = {
    [WAL_METADATA.sha256]: sha256,
    [WAL_METADATA.bytes]: String(bytes),
    [WAL_METADATA.name]: name,
  };
  if (file.kind === 'segment' || file.kind === 'partial') {
    const header = parseSegmentHeader(head, name);
    let claim = context.claims?.get(header.systemIdentifier);
    if (claim === undefined) {
      claim = claimArchive(storage, header.systemIdentifier, context.signer, context.trust);
      context.claims?.set(header.systemIdentifier, claim);
      // A failed check is not remembered: the next file checks again.
      claim.catch(() => context.claims?.delete(header.systemIdentifier));
    }
    await claim;
    metadata[WAL_METADATA.systemIdentifier] = header.systemIdentifier;
  }
  const key = walObjectKey(file, sha256);
  const pushed = { name, key, sha256, identity };
  const alreadyArchived = async (): Promise<PushedWalFile | undefined> => {
    const existing = await storage.head(key);
    if (existing === undefined) return undefined;
    const stored = existing.metadata[WAL_METADATA.sha256];
    if (stored === sha256) return { ...pushed, outcome: 'already-archived', bytes };
    throw new PmsError(
      'PMS_ERR_WAL_CONFLICT',
      `${name} is already archived in ${storage.location} with ${stored === undefined ? 'no recorded checksum' : 'different content'}: refusing to overwrite it. Two servers may be archiving into one repository, or a restored server is reusing a timeline; give it its own BACKUP_REPOSITORY or investigate before deleting ${key}`,
      { details: { key, storedSha256: stored ?? null, newSha256: sha256 } },
    );
  };
  const before = await alreadyArchived();
  if (before !== undefined) return before;
  try {
    const stored = await storeEncryptedBytes({
      storage,
      key,
      recipients: context.recipients,
      signer: context.signer,
      abort,
      metadata,
      bytes: compressed,
      // Copy and monitor hold no decryption key: the sealed signature lets them tell our WAL from a planted object.
      sealMetadata: (sealed) => sealWalObject(key, sealed, context.signer),
    });
    return { ...pushed, outcome: 'stored', bytes: stored.storedBytes };
  } catch (error) {
    // Write-once lost a race to an identical push (a manual run beside the server's): harmless.
    if (isPmsError(error, 'PMS_ERR_TARGET_EXISTS')) {
      const raced = await alreadyArchived();
      if (raced !== undefined) return raced;
    }
    throw error;
  }
}

/**
 * zstd level for WAL. Level 1 stores pgbench WAL ~5% larger than level 3 for ~30% less CPU on
 * the database server (docs/performance.md): archiving competes with the server for its cores.
 */
export const WAL_ZSTD_LEVEL = 1;
