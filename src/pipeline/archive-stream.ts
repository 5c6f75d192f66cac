import type { Readable } from 'node:stream';
import type { LogicalManifest } from '../repository/manifest.js';
import { startDecompressor } from '../compression/zstd.js';
import type { DecryptionKeys } from '../crypto/keys.js';
import { classifyCipherError, decryptStream } from '../crypto/stream-cipher.js';
import { PmsError, isPmsError } from '../errors/catalogue.js';
import type { Storage } from '../storage/storage.js';
import { ByteMeter } from '../streams/byte-meter.js';
import { linkAbort } from '../process/linked-abort.js';
import { pipeline } from 'node:stream/promises';

export interface ArchiveStream {
  /** The plaintext pg_dump custom-format archive. Provisional until `verified` resolves. */
  readonly archive: Readable;
  /**
   * Resolves once the whole object was read and every check passed: size and sha256 equal the
   * manifest's, the OpenPGP MDC verified, zstd's checksum verified. Rejects otherwise.
   */
  readonly verified: Promise<void>;
  /** Stops fetching (e.g. pg_restore failed). */
  abort(reason?: unknown): void;
}

/** Fetch → sha256 → OpenPGP decrypt → zstd -d, streamed, for one pass over a logical backup. */
export async function openArchiveStream(options: {
  manifest: LogicalManifest;
  storage: Storage;
  keys: DecryptionKeys;
  onProgress?: (fetchedBytes: number, totalBytes: number) => void;
  signal?: AbortSignal;
}): Promise<ArchiveStream> {
  const object = options.manifest.objects[0];
  if (!object) throw new PmsError('PMS_ERR_MANIFEST', `manifest of ${options.manifest.id} lists no objects`);
  const link = linkAbort(options.signal);
  const abort = link.controller;
  const fetched = new ByteMeter({ sha256: true, onProgress: (n) => options.onProgress?.(n, object.bytes) });
  const source = await options.storage.get(object.key, { signal: abort.signal });
  source.on('error', (error) => fetched.destroy(error));
  const plain = await decryptStream(source.pipe(fetched), options.keys);
  const zstd = startDecompressor({ signal: abort.signal });
  const decrypting = pipeline(plain, zstd.child.stdin!).catch((error: unknown) => {
    throw classifyCipherError(error) ?? error;
  });
  const decompressing = zstd.done.catch((error: unknown) => {
    if (isPmsError(error, 'PMS_ERR_ABORTED')) throw error;
    throw new PmsError('PMS_ERR_INTEGRITY', `decompression failed (${(error as Error).message}): the backup data is corrupt`, {
      cause: error,
    });
  });
  const verified = Promise.all([decrypting, decompressing]).then(() => {
    if (fetched.bytes !== object.bytes || fetched.sha256 !== object.sha256) {
      throw new PmsError(
        'PMS_ERR_INTEGRITY',
        `${object.key} does not match its manifest (sha256 or size differs): the stored backup was modified; refusing it`,
        {
          details: { expectedSha256: object.sha256, actualSha256: fetched.sha256, expectedBytes: object.bytes, actualBytes: fetched.bytes },
        },
      );
    }
  });
  verified.catch(() => undefined);
  verified.finally(() => link.unlink()).catch(() => undefined);
  return {
    archive: zstd.child.stdout!,
    verified,
    abort: (reason) => {
      abort.abort(reason);
      source.destroy();
    },
  };
}

/** The most meaningful failure: integrity and key errors explain the others (e.g. a broken pipe). */
export function pickRootCause(errors: unknown[]): unknown {
  if (errors.length === 0) return undefined;
  const rank = (e: unknown): number => {
    if (classifyCipherError(e) || isPmsError(e, 'PMS_ERR_INTEGRITY')) return 0;
    if (isPmsError(e, 'PMS_ERR_KEY') || isPmsError(e, 'PMS_ERR_REPO_UNAVAILABLE') || isPmsError(e, 'PMS_ERR_NOT_FOUND')) return 1;
    if (isPmsError(e, 'PMS_ERR_TOOL_FAILED')) return 2;
    if (isPmsError(e, 'PMS_ERR_ABORTED')) return 4;
    return 3;
  };
  const best = [...errors].sort((a, b) => rank(a) - rank(b))[0];
  return classifyCipherError(best) ?? best;
}

/**
 * One pass: archive → consumer (a pg_restore process's stdin, or a filter chain). Settles when
 * the consumer is done AND the archive verified; the first real failure wins.
 */
export async function runArchivePass(stream: ArchiveStream, consume: (archive: Readable) => Promise<void>): Promise<void> {
  const settled = await Promise.allSettled([
    stream.verified,
    consume(stream.archive).catch((error: unknown) => {
      stream.abort(error);
      throw error;
    }),
  ]);
  const errors = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => s.reason as unknown);
  const failure = pickRootCause(errors);
  if (failure !== undefined) throw failure;
}

/**
 * Writes the archive into a consumer process's stdin with backpressure. A consumer may stop
 * reading before the end (pg_restore skipping trailing data it does not need): the rest is then
 * drained and discarded, so the archive is still read to its end and fully verified.
 */
export async function feedStdin(
  archive: Readable,
  stdin: NodeJS.WritableStream & { destroyed?: boolean; writableEnded?: boolean },
): Promise<void> {
  let closed = false;
  const onError = () => {
    closed = true;
  };
  stdin.on('error', onError);
  stdin.on('close', onError);
  try {
    for await (const chunk of archive) {
      if (closed || stdin.destroyed) continue;
      if (!stdin.write(chunk as Buffer)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            stdin.off('drain', done);
            stdin.off('close', done);
            resolve();
          };
          stdin.on('drain', done);
          stdin.on('close', done);
        });
      }
    }
    if (!closed && !stdin.destroyed) stdin.end();
  } finally {
    stdin.off('close', onError);
  }
}
