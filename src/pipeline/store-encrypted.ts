import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { startPipedCompressor } from '../compression/zstd.js';
import type { RecipientSet } from '../crypto/keys.js';
import type { SigningKey } from '../crypto/signing.js';
import { encryptBytes, encryptStream } from '../crypto/stream-cipher.js';
import { PmsError, isPmsError } from '../errors/catalogue.js';
import type { ToolProcess } from '../process/tool-process.js';
import { readAll } from '../storage/read-all.js';
import type { PutResult, Storage } from '../storage/storage.js';
import { ByteMeter, EndGate } from '../streams/byte-meter.js';
import { sampleBytesWritten } from '../streams/process-io.js';

/** Where the encrypted object goes, and what else must succeed for it to count. */
interface StoreTarget {
  readonly storage: Storage;
  readonly key: string;
  readonly recipients: RecipientSet;
  /** Signs the object inside its encryption, bound to `key`. */
  readonly signer: SigningKey;
  /** Aborted here on the first failure (it stops the producers); the caller owns it. */
  readonly abort: AbortController;
  readonly metadata?: Readonly<Record<string, string>>;
  /** Set once the object exists under `key` (so the caller deletes it if a later step fails). */
  readonly onStored?: () => void;
  /**
   * Metadata that describes the stored bytes themselves (WAL's sealed signature over their
   * sha256, repository/wal-object-signature.ts). The encrypted object is then held in memory
   * whole and stored by one PUT once complete, so that metadata is written atomically with it.
   * Only for small objects (a WAL file: at most 16 MiB before compression).
   */
  readonly sealMetadata?: (stored: { readonly sha256: string; readonly bytes: number }) => Promise<Record<string, string>>;
}

export interface StoreEncryptedStreamOptions extends StoreTarget {
  /** Bytes to encrypt as they are (already compressed, or small). */
  readonly source: Readable;
  /**
   * Work that must also succeed for the object to count (the program or command producing
   * `source`), most explanatory first: on failure the first typed error among them is thrown.
   */
  readonly alongside?: readonly Promise<unknown>[];
  /** Progress only: encrypted bytes stored so far. */
  readonly onProgress?: (storedBytes: number) => void;
}

export interface StoredStream {
  readonly sourceBytes: number;
  readonly storedBytes: number;
  readonly sha256: string;
}

/**
 * source → OpenPGP → storage with backpressure. The upload is committed only when `source`
 * ends normally, so a source that ends only on success cannot leave a partial object. On
 * failure everything is stopped and the most explanatory error is thrown: storage's typed
 * error first (it also explains a full disk that upstream only sees as a raw stream error),
 * then those of `alongside` in order.
 */
export async function storeEncrypted(options: StoreEncryptedStreamOptions): Promise<StoredStream> {
  const { abort } = options;
  const alongside = options.alongside ?? [];
  const source = new ByteMeter();
  const stored = new ByteMeter({ sha256: true, onProgress: options.onProgress });
  const intoMeter = pipeline(options.source, source);
  intoMeter.catch(() => undefined);
  // Handled from the start: signing may read the source before encryptStream returns, so a
  // producer that fails at once (a refused base backup) must not become an unhandled rejection.
  for (const work of alongside) work.catch(() => undefined);
  let encrypted: Readable;
  try {
    encrypted = await encryptStream(source, options.recipients, { signer: options.signer, objectKey: options.key });
  } catch (error) {
    if (!abort.signal.aborted) abort.abort(error);
    const outcomes = await Promise.allSettled([...alongside, intoMeter]);
    const typed = outcomes.find(
      (f): f is PromiseRejectedResult => f.status === 'rejected' && isPmsError(f.reason) && !isPmsError(f.reason, 'PMS_ERR_ABORTED'),
    )?.reason;
    throw typed ?? error;
  }
  const body = new PassThrough({ highWaterMark: 1 << 20 });
  const toStorage = pipeline(encrypted, stored, body);
  // Write-once: an object of the repository is created, never replaced (If-None-Match on S3).
  const put = options.sealMetadata
    ? putSealed(options, options.sealMetadata, body, stored, abort.signal)
    : options.storage.put(options.key, body, {
        ifAbsent: true,
        signal: abort.signal,
        ...(options.metadata ? { metadata: options.metadata } : {}),
      });
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
      ...alongside.map((work) => work.catch(failFast)),
    ]);
    if (putResult.bytes !== stored.bytes) {
      throw new PmsError(
        'PMS_ERR_INTEGRITY',
        `the repository stored ${putResult.bytes} bytes of ${options.key} but ${stored.bytes} were sent`,
      );
    }
    return { sourceBytes: source.bytes, storedBytes: stored.bytes, sha256: stored.sha256 };
  } catch (error) {
    const outcomes = await Promise.allSettled([put, ...alongside, intoMeter]);
    const typed = outcomes.find(
      (f): f is PromiseRejectedResult => f.status === 'rejected' && isPmsError(f.reason) && !isPmsError(f.reason, 'PMS_ERR_ABORTED'),
    )?.reason;
    throw typed ?? firstError ?? error;
  }
}

/** Collects the whole encrypted object, then stores it with metadata computed from its bytes. */
async function putSealed(
  target: StoreTarget,
  seal: NonNullable<StoreTarget['sealMetadata']>,
  body: Readable,
  stored: ByteMeter,
  signal: AbortSignal,
): Promise<PutResult> {
  const bytes = await readAll(body);
  // `stored` has flushed (its digest is final) before `body`, after it in the pipeline, ends.
  const sealed = await seal({ sha256: stored.sha256, bytes: stored.bytes });
  return target.storage.putBytes(target.key, bytes, { ifAbsent: true, signal, metadata: { ...target.metadata, ...sealed } });
}

/**
 * Bytes already in memory (a compressed WAL segment) → OpenPGP → one write-once PUT with
 * `sealMetadata` computed from the encrypted bytes. Resolves only once the store reports the
 * object durably written with every byte; nothing is written on any earlier failure.
 */
export async function storeEncryptedBytes(
  options: StoreTarget & { readonly bytes: Uint8Array; readonly sealMetadata: NonNullable<StoreTarget['sealMetadata']> },
): Promise<StoredStream> {
  const { abort } = options;
  const encrypted = await encryptBytes(options.bytes, options.recipients, { signer: options.signer, objectKey: options.key });
  const sha256 = createHash('sha256').update(encrypted).digest('hex');
  const sealed = await options.sealMetadata({ sha256, bytes: encrypted.byteLength });
  abort.signal.throwIfAborted();
  const result = await options.storage.putBytes(options.key, encrypted, {
    ifAbsent: true,
    signal: abort.signal,
    metadata: { ...options.metadata, ...sealed },
  });
  options.onStored?.();
  if (result.bytes !== encrypted.byteLength) {
    throw new PmsError(
      'PMS_ERR_INTEGRITY',
      `the repository stored ${result.bytes} bytes of ${options.key} but ${encrypted.byteLength} were sent`,
    );
  }
  return { sourceBytes: options.bytes.byteLength, storedBytes: encrypted.byteLength, sha256 };
}

export interface StoreEncryptedOptions extends StoreTarget {
  /** The program whose stdout is the plaintext (pg_dump), already started. */
  readonly producer: ToolProcess;
  readonly level: number;
  /** Work that must also succeed for the object to count (e.g. row counts in the same snapshot). */
  readonly alongside?: Promise<unknown>;
  /** Progress only: plaintext bytes the producer has written so far, and bytes stored. */
  readonly onProgress?: (plainSoFar: number, storedBytes: number) => void;
}

export interface StoredEncrypted {
  readonly plainBytes: number;
  readonly compressedBytes: number;
  readonly storedBytes: number;
  readonly sha256: string;
}

/**
 * producer → zstd (reading the producer's pipe directly) → OpenPGP → storage. The compressed
 * stream ends, and so the upload commits, only once the producer and zstd have exited 0 and
 * zstd's own compressed count equals the bytes received (EndGate). Errors are ranked storage,
 * zstd (it cannot fail because of the producer), producer, then `alongside`.
 */
export async function storeCompressedEncrypted(options: StoreEncryptedOptions): Promise<StoredEncrypted> {
  const { producer, abort } = options;
  const zstd = startPipedCompressor(producer.child.stdout!, { level: options.level, signal: abort.signal });
  const compressed = new ByteMeter();
  let plainSoFar = 0;
  let plainBytes: number | undefined;
  const stopSampling = sampleBytesWritten(producer.child.pid, (bytes) => (plainSoFar = bytes));
  const gate = new EndGate(async () => {
    await Promise.all([producer.done, zstd.done]);
    const counts = zstd.counts();
    if (counts.compressed !== compressed.bytes) {
      throw new PmsError('PMS_ERR_INTEGRITY', `zstd reports ${counts.compressed} compressed bytes but ${compressed.bytes} arrived`);
    }
    plainBytes = counts.plain;
  });
  try {
    const stored = await storeEncrypted({
      ...options,
      source: zstd.child.stdout!.pipe(compressed).pipe(gate),
      alongside: [zstd.done, producer.done, options.alongside ?? Promise.resolve()],
      onProgress: (storedBytes) => options.onProgress?.(plainSoFar, storedBytes),
    });
    if (plainBytes === undefined) throw new PmsError('PMS_ERR_INTERNAL', 'the backup stream ended before zstd reported its byte counts');
    return { plainBytes, compressedBytes: compressed.bytes, storedBytes: stored.storedBytes, sha256: stored.sha256 };
  } finally {
    stopSampling();
  }
}
