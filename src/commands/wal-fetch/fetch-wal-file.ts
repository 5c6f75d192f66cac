import { randomBytes } from 'node:crypto';
import { rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DecryptionKeys } from '../../crypto/keys.js';
import { PmsError, isPmsError } from '../../errors/catalogue.js';
import { integrityMismatch } from '../../pipeline/integrity-error.js';
import type { SegmentZstd } from '../../compression/zstd.js';
import { type ReaderTrust, readEncryptedToFile } from '../../pipeline/open-encrypted.js';
import type { ObjectInfo, Storage } from '../../storage/storage.js';
import { WAL_SEGMENT_BYTES, parseWalFileName } from '../../wal/wal-file-name.js';
import { systemMismatch } from '../../repository/wal-identity.js';
import { WAL_METADATA, walObjectKey } from '../../repository/wal-layout.js';
import { readSegmentHeader } from '../../wal/wal-page-header.js';

export interface FetchWalOptions {
  readonly storage: Storage;
  readonly keys: DecryptionKeys;
  /** Whose signatures archived WAL must carry: an untrusted segment is an error (exit 200), never "not archived". */
  readonly trust: ReaderTrust;
  /** %f: the file name PostgreSQL wants. */
  readonly name: string;
  /** %p: where to put it (written to a temporary file beside it, then renamed). */
  readonly destination: string;
  /** The recovering cluster's system identifier (from its pg_control). */
  readonly systemIdentifier: string;
  /** How zstd runs: the prefetcher's relay (it never forks itself); unset, a child of this process. */
  readonly zstd?: SegmentZstd | undefined;
  /** The object's HEAD, when the caller already asked for it (wal-fetch does, to answer "not archived" early). */
  readonly head?: ObjectInfo | undefined;
  readonly signal?: AbortSignal;
}

export type FetchWalResult =
  | { readonly outcome: 'fetched'; readonly key: string; readonly bytes: number }
  | { readonly outcome: 'not-found'; readonly key?: string };

/**
 * restore_command: repository → OpenPGP → zstd → %p (pipeline/readEncryptedToFile, in memory). The file appears under %p only after
 * every check passed (OpenPGP MDC, zstd checksum, plaintext sha256 from the object's metadata,
 * system identifier in the segment header, segment size), so PostgreSQL never reads a partial
 * or foreign segment. "Not in the archive" is a result, not an error: it is how recovery
 * learns it reached the end of the archived WAL. Everything else throws.
 */
export async function fetchWalFile(options: FetchWalOptions): Promise<FetchWalResult> {
  const { storage, name } = options;
  const file = parseWalFileName(name);
  if (file === undefined) {
    throw new PmsError(
      'PMS_ERR_USAGE',
      `${JSON.stringify(name)} is not a WAL file name: wal-fetch is meant to be restore_command = 'pms-backup wal-fetch %f %p'`,
    );
  }
  // PostgreSQL never asks for a .partial: it must not be mistaken for a complete segment.
  if (file.kind === 'partial') return { outcome: 'not-found' };
  const key = walObjectKey(file);
  const info = options.head ?? (await storage.head(key));
  if (info === undefined) return { outcome: 'not-found', key };
  const expectedSha = info.metadata[WAL_METADATA.sha256];
  if (expectedSha === undefined) {
    throw new PmsError('PMS_ERR_INTEGRITY', `${key} has no recorded checksum, so it cannot be verified: refusing to hand it to recovery`);
  }
  const storedSystem = info.metadata[WAL_METADATA.systemIdentifier];
  if (storedSystem !== undefined && storedSystem !== options.systemIdentifier)
    throw systemMismatch(storage, storedSystem, options.systemIdentifier);

  const temp = join(dirname(options.destination), `.pms-fetch-${randomBytes(4).toString('hex')}-${name}`);
  try {
    const facts = await readEncryptedToFile({
      storage,
      key,
      keys: options.keys,
      trust: options.trust,
      plainSha256: expectedSha,
      output: temp,
      zstd: options.zstd,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (file.kind === 'segment') {
      if (facts.plainBytes !== WAL_SEGMENT_BYTES) {
        throw integrityMismatch(key, 'segment size', `${WAL_SEGMENT_BYTES} bytes`, `${facts.plainBytes} bytes`);
      }
      const header = await readSegmentHeader(temp, name);
      if (header.systemIdentifier !== options.systemIdentifier)
        throw systemMismatch(storage, header.systemIdentifier, options.systemIdentifier);
    }
    await rename(temp, options.destination);
    return { outcome: 'fetched', key, bytes: facts.plainBytes };
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    if (isPmsError(error)) throw error;
    throw new PmsError('PMS_ERR_INTERNAL', `fetching ${name} failed: ${(error as Error).message ?? String(error)}`, { cause: error });
  }
}
