import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { startPipedCompressor } from '../compression/zstd.js';
import type { RecipientSet } from '../crypto/keys.js';
import { encryptStream } from '../crypto/stream-cipher.js';
import { PmsError, isPmsError } from '../errors/catalogue.js';
import type { ToolProcess } from '../process/tool-process.js';
import type { Storage } from '../storage/storage.js';
import { ByteMeter, EndGate } from '../streams/byte-meter.js';
import { sampleBytesWritten } from '../streams/process-io.js';

export interface StoreEncryptedOptions {
  /** The program whose stdout is the plaintext (pg_dump, pg_basebackup), already started. */
  readonly producer: ToolProcess;
  readonly storage: Storage;
  readonly key: string;
  readonly recipients: RecipientSet;
  readonly level: number;
  /** Aborted here on the first failure (it kills the programs); the caller owns it. */
  readonly abort: AbortController;
  readonly metadata?: Readonly<Record<string, string>>;
  /** Work that must also succeed for the object to count (e.g. row counts in the same snapshot). */
  readonly alongside?: Promise<unknown>;
  /** Progress only: plaintext bytes the producer has written so far, and bytes stored. */
  readonly onProgress?: (plainSoFar: number, storedBytes: number) => void;
  /** Set once the object exists under `key` (so the caller deletes it if a later step fails). */
  readonly onStored?: () => void;
}

export interface StoredEncrypted {
  readonly plainBytes: number;
  readonly compressedBytes: number;
  readonly storedBytes: number;
  readonly sha256: string;
}

/**
 * producer → zstd (reading the producer's pipe directly) → OpenPGP → storage, with
 * backpressure end to end. The upload is committed only once the producer and zstd have exited
 * 0 and zstd's own compressed count equals the bytes received (EndGate). On failure everything
 * is stopped and the most explanatory error is thrown: storage's typed error first (it carries
 * the producers' failures too and explains a full disk that upstream only sees as a raw stream
 * error), then zstd's (it cannot fail because of the producer), then the producer's.
 */
export async function storeCompressedEncrypted(options: StoreEncryptedOptions): Promise<StoredEncrypted> {
  const { producer, abort } = options;
  const zstd = startPipedCompressor(producer.child.stdout!, { level: options.level, signal: abort.signal });
  const compressed = new ByteMeter();
  let plainSoFar = 0;
  let plainBytes: number | undefined;
  const stopSampling = sampleBytesWritten(producer.child.pid, (bytes) => (plainSoFar = bytes));
  const stored = new ByteMeter({ sha256: true, onProgress: (bytes) => options.onProgress?.(plainSoFar, bytes) });
  const gate = new EndGate(async () => {
    await Promise.all([producer.done, zstd.done]);
    const counts = zstd.counts();
    if (counts.compressed !== compressed.bytes) {
      throw new PmsError('PMS_ERR_INTEGRITY', `zstd reports ${counts.compressed} compressed bytes but ${compressed.bytes} arrived`);
    }
    plainBytes = counts.plain;
  });
  const encrypted = await encryptStream(zstd.child.stdout!.pipe(compressed), options.recipients);
  const body = new PassThrough({ highWaterMark: 1 << 20 });
  const toStorage = pipeline(encrypted, stored, gate, body);
  const put = options.storage.put(options.key, body, { signal: abort.signal, ...(options.metadata ? { metadata: options.metadata } : {}) });
  let firstError: unknown;
  const failFast = (error: unknown): never => {
    firstError ??= error;
    if (!abort.signal.aborted) abort.abort(error);
    body.destroy(error instanceof Error ? error : new Error(String(error)));
    throw error;
  };
  try {
    const [, , putResult] = await Promise.all([
      producer.done.catch(failFast),
      zstd.done.catch(failFast),
      put.then((result) => {
        options.onStored?.();
        return result;
      }, failFast),
      toStorage.catch(failFast),
      (options.alongside ?? Promise.resolve()).catch(failFast),
    ]);
    if (plainBytes === undefined) throw new PmsError('PMS_ERR_INTERNAL', 'the backup stream ended before zstd reported its byte counts');
    if (putResult.bytes !== stored.bytes) {
      throw new PmsError('PMS_ERR_INTEGRITY', `the repository stored ${putResult.bytes} bytes of ${options.key} but ${stored.bytes} were sent`);
    }
    return { plainBytes, compressedBytes: compressed.bytes, storedBytes: stored.bytes, sha256: stored.sha256 };
  } catch (error) {
    const outcomes = await Promise.allSettled([put, zstd.done, producer.done, options.alongside ?? Promise.resolve()]);
    const typed = outcomes.find(
      (f): f is PromiseRejectedResult => f.status === 'rejected' && isPmsError(f.reason) && !isPmsError(f.reason, 'PMS_ERR_ABORTED'),
    )?.reason;
    throw typed ?? firstError ?? error;
  } finally {
    stopSampling();
  }
}

export interface StoreEncryptedStreamOptions {
  /** Bytes to encrypt as they are (already compressed, or small). Errors it is destroyed with win. */
  readonly source: Readable;
  readonly storage: Storage;
  readonly key: string;
  readonly recipients: RecipientSet;
  /** Aborted here on the first failure; the caller owns it. */
  readonly abort: AbortController;
  readonly metadata?: Readonly<Record<string, string>>;
  /** Work that must also succeed for the object to count (e.g. the command producing `source`). */
  readonly alongside?: Promise<unknown>;
  readonly onProgress?: (sourceBytes: number, storedBytes: number) => void;
  readonly onStored?: () => void;
}

export interface StoredStream {
  readonly sourceBytes: number;
  readonly storedBytes: number;
  readonly sha256: string;
}

/**
 * source → OpenPGP → storage with backpressure, for bytes that need no compressing here (the
 * server-compressed base backup tar, its backup_manifest). The upload is committed only when
 * `source` ends normally, so a source that ends only on success cannot leave a partial object.
 */
export async function storeEncrypted(options: StoreEncryptedStreamOptions): Promise<StoredStream> {
  const { abort } = options;
  const source = new ByteMeter();
  const stored = new ByteMeter({ sha256: true, onProgress: (bytes) => options.onProgress?.(source.bytes, bytes) });
  const intoMeter = pipeline(options.source, source);
  intoMeter.catch(() => undefined);
  const encrypted = await encryptStream(source, options.recipients);
  const body = new PassThrough({ highWaterMark: 1 << 20 });
  const toStorage = pipeline(encrypted, stored, body);
  const put = options.storage.put(options.key, body, { signal: abort.signal, ...(options.metadata ? { metadata: options.metadata } : {}) });
  let firstError: unknown;
  const failFast = (error: unknown): never => {
    firstError ??= error;
    if (!abort.signal.aborted) abort.abort(error);
    body.destroy(error instanceof Error ? error : new Error(String(error)));
    throw error;
  };
  try {
    const [, putResult] = await Promise.all([
      intoMeter.catch(failFast),
      put.then((result) => {
        options.onStored?.();
        return result;
      }, failFast),
      toStorage.catch(failFast),
      (options.alongside ?? Promise.resolve()).catch(failFast),
    ]);
    if (putResult.bytes !== stored.bytes) {
      throw new PmsError('PMS_ERR_INTEGRITY', `the repository stored ${putResult.bytes} bytes of ${options.key} but ${stored.bytes} were sent`);
    }
    return { sourceBytes: source.bytes, storedBytes: stored.bytes, sha256: stored.sha256 };
  } catch (error) {
    const outcomes = await Promise.allSettled([put, options.alongside ?? Promise.resolve(), intoMeter]);
    const typed = outcomes.find(
      (f): f is PromiseRejectedResult => f.status === 'rejected' && isPmsError(f.reason) && !isPmsError(f.reason, 'PMS_ERR_ABORTED'),
    )?.reason;
    throw typed ?? firstError ?? error;
  }
}
