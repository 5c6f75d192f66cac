import { createHash } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { type Readable, Readable as NodeReadable, type Writable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import {
  NATIVE_ZSTD,
  type SegmentZstd,
  decompressBytesInto,
  decompressToFile,
  isSingleChecksummedFrame,
  startDecompressor,
  startPipedDecompressor,
} from '../compression/zstd.js';
import type { DecryptionKeys } from '../crypto/keys.js';
import type { SignatureFacts, TrustPolicy } from '../crypto/signing.js';
import { classifyCipherError, decryptBytes, decryptStream } from '../crypto/stream-cipher.js';
import { PmsError, isPmsError } from '../errors/catalogue.js';
import { type LinkedAbort, linkAbort } from '../process/linked-abort.js';
import type { Storage } from '../storage/storage.js';
import { ByteMeter } from '../streams/byte-meter.js';
import { integrityMismatch } from './integrity-error.js';
import { pickRootCause } from './root-cause.js';

/** The stored (encrypted) object as a manifest records it. */
export interface ExpectedStored {
  readonly bytes: number;
  readonly sha256: string;
}

export interface OpenEncryptedOptions {
  readonly storage: Storage;
  readonly key: string;
  readonly keys: DecryptionKeys;
  /** Whose signature the object must carry; it is bound to `key`. */
  readonly trust: ReaderTrust;
  /** The object as the manifest recorded it; checked once every byte went through. */
  readonly stored?: ExpectedStored;
  /** The plaintext's sha256 recorded when it was written (WAL keeps it in the object's metadata). */
  readonly plainSha256?: string;
  /** Whether the plaintext is a zstd frame to undo (false: the object holds it as is). */
  readonly decompress: boolean;
  /**
   * With `decompress`: zstd writes the plaintext straight into this pipe (a program's stdin,
   * which this call takes over and closes on its side), and `plaintext` is empty. For large
   * objects read by another program (a base backup into tar); no plainSha256 then.
   */
  readonly decompressInto?: Writable;
  readonly onProgress?: (fetchedBytes: number) => void;
  readonly signal?: AbortSignal;
}

export type ReaderTrust = TrustPolicy;

export interface ReadFacts {
  /** The trusted signer's fingerprint; undefined only for an unsigned object read with allowUnsigned. */
  readonly signer: string | undefined;
  readonly storedBytes: number;
  readonly storedSha256: string;
  readonly plainBytes: number;
  /** Computed over the plaintext; undefined when no sha256 was expected, or (readEncryptedToFile) when a stronger check made it redundant. */
  readonly plainSha256: string | undefined;
}

export interface OpenedObject {
  /** The plaintext. Provisional: nothing derived from it may become visible before `verified`. */
  readonly plaintext: Readable;
  /**
   * Settles once the whole object was read: resolves only when every check passed (stored size
   * and sha256, OpenPGP MDC, zstd's checksum, the plaintext's sha256), rejects with the check
   * that failed otherwise.
   */
  readonly verified: Promise<ReadFacts>;
  /** Stops fetching (the consumer failed). */
  abort(reason?: unknown): void;
}

/**
 * The one reader of encrypted objects: storage → sha256 → OpenPGP → zstd -d → plaintext, streamed
 * with backpressure. Every command that reads an encrypted object goes through here (or through
 * readEncryptedBytes), so each check exists once and its failure is worded once.
 */
export async function openEncrypted(options: OpenEncryptedOptions): Promise<OpenedObject> {
  if (options.decompressInto && options.plainSha256 !== undefined)
    throw new PmsError('PMS_ERR_INTERNAL', 'decompressInto cannot check a plaintext sha256 (the plaintext bypasses this process)');
  const link = linkAbort(options.signal);
  try {
    if (options.stored) await checkStoredSize(options.storage, options.key, options.stored);
    const source = await options.storage.get(options.key, { signal: link.controller.signal });
    return await decryptFrom(source, options, link);
  } catch (error) {
    link.unlink();
    throw error;
  }
}

async function decryptFrom(source: Readable, options: OpenEncryptedOptions, link: LinkedAbort): Promise<OpenedObject> {
  const abort = link.controller;
  const fetched = new ByteMeter({ sha256: true, ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
  const plainMeter = new ByteMeter({ sha256: options.plainSha256 !== undefined });
  source.on('error', (error) => fetched.destroy(error));
  let decrypted: Readable;
  let signature: Promise<SignatureFacts | undefined>;
  try {
    ({ plaintext: decrypted, signature } = await decryptStream(source.pipe(fetched), options.keys, {
      trusted: options.trust.trusted,
      objectKey: options.key,
      ...(options.trust.allowUnsigned ? { allowUnsigned: true } : {}),
    }));
  } catch (error) {
    source.destroy();
    throw error;
  }
  const stages: Promise<unknown>[] = [];
  const into = options.decompress ? options.decompressInto : undefined;
  let directPlainBytes: (() => number) | undefined;
  if (options.decompress) {
    const piped = into ? startPipedDecompressor(into, { signal: abort.signal }) : undefined;
    directPlainBytes = piped?.plainBytes;
    const zstd = piped ?? startDecompressor({ signal: abort.signal });
    const zstdVerdict = zstd.done.catch((error: unknown) => {
      // zstd dies of a broken pipe, or is stopped by us, when the consumer or another stage
      // failed first (a full disk): that is their story, not a corrupt object.
      if (isPmsError(error, 'PMS_ERR_ABORTED') || /Broken pipe|Write error/i.test(zstd.stderr())) throw error;
      throw new PmsError(
        'PMS_ERR_INTEGRITY',
        `${options.key} failed its zstd check (${firstLine((error as Error).message)}): the data is corrupt`,
        {
          cause: error,
          details: { key: options.key, check: 'zstd' },
        },
      );
    });
    stages.push(
      pipeline(decrypted, zstd.child.stdin!).catch(async (error: unknown) => {
        if ((error as NodeJS.ErrnoException).code === 'EPIPE') {
          // zstd stopped reading: its own exit says why (corrupt input), so wait for it rather
          // than let the broken pipe stop everything first and hide the verdict.
          await zstdVerdict;
          throw new PmsError('PMS_ERR_ABORTED', `zstd stopped reading ${options.key}`, { cause: error });
        }
        throw classifyCipherError(error, options.key) ?? error;
      }),
      zstdVerdict,
      piped ? Promise.resolve() : pipeline(zstd.child.stdout!, plainMeter),
    );
    // The plaintext went to `into`: what this object hands its consumer is empty.
    if (piped) plainMeter.end();
  } else {
    stages.push(
      pipeline(decrypted, plainMeter).catch((error: unknown) => {
        throw classifyCipherError(error, options.key) ?? error;
      }),
    );
  }
  stages.push(signature);
  const verified = settleAll(stages, abort)
    .catch((error: unknown) => {
      // When the whole object went by, a wrong size or sha256 says more than whichever stage
      // tripped over the changed bytes first (OpenPGP, zstd, the consumer).
      const digest = fetched.sha256IfEnded;
      if (options.stored && digest !== undefined) checkStored(options.key, options.stored, fetched);
      throw error;
    })
    .then(async (): Promise<ReadFacts> => {
      if (options.stored) checkStored(options.key, options.stored, fetched);
      const signed = await signature;
      if (options.plainSha256 !== undefined && plainMeter.sha256 !== options.plainSha256) {
        throw integrityMismatch(options.key, 'plaintext sha256', options.plainSha256, plainMeter.sha256);
      }
      return {
        signer: signed?.signer,
        storedBytes: fetched.bytes,
        storedSha256: fetched.sha256,
        plainBytes: directPlainBytes ? directPlainBytes() : plainMeter.bytes,
        plainSha256: options.plainSha256 === undefined ? undefined : plainMeter.sha256,
      };
    })
    .finally(() => link.unlink());
  verified.catch(() => undefined);
  return {
    plaintext: plainMeter,
    verified,
    abort: (reason) => {
      abort.abort(reason);
      source.destroy();
    },
  };
}

/**
 * One pass over an opened object: plaintext → consumer. Settles when the consumer is done AND
 * the object verified; the most explanatory failure wins (pickRootCause).
 */
export async function consumeVerified<T>(opened: OpenedObject, consume: (plaintext: Readable) => Promise<T>): Promise<[T, ReadFacts]> {
  const settled = await Promise.allSettled([
    opened.verified,
    consume(opened.plaintext).catch((error: unknown) => {
      opened.abort(error);
      throw error;
    }),
  ]);
  const errors = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => s.reason as unknown);
  const failure = pickRootCause(errors);
  if (failure !== undefined) throw failure;
  const [facts, result] = settled as [PromiseFulfilledResult<ReadFacts>, PromiseFulfilledResult<T>];
  return [result.value, facts.value];
}

/** Open + consume in one call, for callers with a single consumer. */
export async function readEncrypted<T>(
  options: OpenEncryptedOptions,
  consume: (plaintext: Readable) => Promise<T>,
): Promise<[T, ReadFacts]> {
  const opened = await openEncrypted(options);
  return consumeVerified(opened, consume);
}

/**
 * A small object (a server's backup_manifest, a history file): fetched whole and checked against
 * the manifest's size and sha256 before anything is decrypted, so a modified object is named as
 * such; then decrypted (and decompressed) into memory through the same stages.
 */
export async function readEncryptedBytes(options: OpenEncryptedOptions): Promise<Buffer> {
  const fetched = new ByteMeter({ sha256: true });
  const source = await options.storage.get(options.key, options.signal ? { signal: options.signal } : {});
  source.on('error', (error) => fetched.destroy(error));
  const ciphertext = await buffer(source.pipe(fetched));
  if (options.stored) checkStored(options.key, options.stored, fetched);
  const opened = await decryptFrom(NodeReadable.from([ciphertext]), options, linkAbort(options.signal));
  const [plain] = await consumeVerified(opened, (plaintext) => buffer(plaintext));
  return plain;
}

export interface ReadToFileOptions extends Omit<OpenEncryptedOptions, 'decompress' | 'onProgress'> {
  /** A new file (it must not exist) that receives the decompressed plaintext, fsynced. */
  readonly output: string;
  /** How zstd runs (a long-running process's relay); unset: a child of this process. */
  readonly zstd?: SegmentZstd | undefined;
}

/**
 * A zstd-compressed object small enough for memory (a WAL segment) → a file, with the same
 * checks as openEncrypted in the same order: stored size and sha256, OpenPGP (MDC and
 * signature, both before any plaintext exists: decryptBytes), zstd's checksum, then the
 * plaintext's size (and its sha256, where it still proves something: see below). `output`
 * exists only if every check passed (it is removed otherwise), and is fsynced; the caller
 * renames it into place. One buffer per stage instead of web streams over 1 MiB chunks
 * (docs/performance.md).
 *
 * The plaintext sha256 pass is skipped when the object carried a trusted signature and its
 * plaintext is exactly one zstd frame with a content checksum: the signature proves the frame
 * is the one the signer compressed, and zstd refuses to finish a frame whose output does not
 * match the checksum inside it, so the output is the content the signer hashed. The recorded
 * sha256 sits in unsigned object metadata and adds nothing to that (docs/architecture.md,
 * "Checks on the WAL read path"). Unsigned objects (--allow-unsigned) and any other frame shape
 * are still hashed and compared.
 */
export async function readEncryptedToFile(options: ReadToFileOptions): Promise<ReadFacts> {
  const fetched = new ByteMeter({ sha256: true });
  const source = await options.storage.get(options.key, options.signal ? { signal: options.signal } : {});
  source.on('error', (error) => fetched.destroy(error));
  const ciphertext = await buffer(source.pipe(fetched));
  if (options.stored) checkStored(options.key, options.stored, fetched);
  const { plaintext: frame, signature } = await decryptBytes(ciphertext, options.keys, {
    trusted: options.trust.trusted,
    objectKey: options.key,
    ...(options.trust.allowUnsigned ? { allowUnsigned: true } : {}),
  });
  const hash = options.plainSha256 !== undefined && (signature === undefined || !isSingleChecksummedFrame(frame));
  let written: { sha256: string | undefined; bytes: number };
  try {
    written = NATIVE_ZSTD
      ? await decompressInMemory(frame, options.output, hash, options.signal)
      : await decompressWithProgram(frame, options, hash);
  } catch (error) {
    await unlink(options.output).catch(() => undefined);
    if (isPmsError(error) && (!isPmsError(error, 'PMS_ERR_TOOL_FAILED') || error.details?.['relay'] === true)) throw error;
    if (!isPmsError(error) && (error as NodeJS.ErrnoException).code?.startsWith('ZSTD_') !== true) throw error;
    throw new PmsError(
      'PMS_ERR_INTEGRITY',
      `${options.key} failed its zstd check (${firstLine((error as Error).message)}): the data is corrupt`,
      {
        cause: error,
        details: { key: options.key, check: 'zstd' },
      },
    );
  }
  try {
    if (written.sha256 !== undefined && written.sha256 !== options.plainSha256) {
      throw integrityMismatch(options.key, 'plaintext sha256', options.plainSha256 ?? '', written.sha256);
    }
    return {
      signer: signature?.signer,
      storedBytes: fetched.bytes,
      storedSha256: fetched.sha256,
      plainBytes: written.bytes,
      plainSha256: written.sha256,
    };
  } catch (error) {
    await unlink(options.output).catch(() => undefined);
    throw error;
  }
}

/** zlib's zstd (Node >= 22.15): decompressed on the thread pool in 1 MiB pieces, hashed as they come if asked, written as they come, fsynced. */
async function decompressInMemory(
  frame: Uint8Array,
  output: string,
  hash: boolean,
  signal: AbortSignal | undefined,
): Promise<{ sha256: string | undefined; bytes: number }> {
  const hasher = hash ? createHash('sha256') : undefined;
  const handle = await open(output, 'wx', 0o600);
  let bytes: number;
  try {
    bytes = await decompressBytesInto(frame, handle, hasher ? (chunk) => hasher.update(chunk) : undefined, signal);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { sha256: hasher?.digest('hex'), bytes };
}

/** The zstd program (Node 20) writes `output` itself; it is read back only when it must be hashed, and fsynced. */
async function decompressWithProgram(
  frame: Uint8Array,
  options: ReadToFileOptions,
  hash: boolean,
): Promise<{ sha256: string | undefined; bytes: number }> {
  await decompressToFile(frame, options.output, {
    ...(options.signal ? { signal: options.signal } : {}),
    via: options.zstd,
    program: true,
  });
  return syncAndMaybeHash(options.output, hash);
}

/** 1 MiB read buffers, reused: on these VMs a page touched for the first time costs ~40 µs. */
const spareBuffers: Buffer[] = [];

async function syncAndMaybeHash(path: string, hash: boolean): Promise<{ sha256: string | undefined; bytes: number }> {
  const handle = await open(path, 'r+');
  try {
    if (!hash) {
      const { size } = await handle.stat();
      await handle.sync();
      return { sha256: undefined, bytes: size };
    }
    const chunk = spareBuffers.pop() ?? Buffer.allocUnsafe(1 << 20);
    try {
      const digest = createHash('sha256');
      let bytes = 0;
      for (;;) {
        const { bytesRead } = await handle.read(chunk, 0, chunk.length, bytes);
        if (bytesRead === 0) break;
        digest.update(chunk.subarray(0, bytesRead));
        bytes += bytesRead;
      }
      await handle.sync();
      return { sha256: digest.digest('hex'), bytes };
    } finally {
      spareBuffers.push(chunk);
    }
  } finally {
    await handle.close();
  }
}

/** The object's size against the manifest's, asked of the store before a byte is fetched. */
async function checkStoredSize(storage: Storage, key: string, expected: ExpectedStored): Promise<void> {
  const info = await storage.head(key);
  // A missing object is reported by get(), as not found.
  if (info !== undefined && info.bytes !== expected.bytes)
    throw integrityMismatch(key, 'size', `${expected.bytes} bytes`, `${info.bytes} bytes`);
}

function checkStored(key: string, expected: ExpectedStored, fetched: ByteMeter): void {
  if (fetched.bytes !== expected.bytes) throw integrityMismatch(key, 'size', `${expected.bytes} bytes`, `${fetched.bytes} bytes`);
  if (fetched.sha256 !== expected.sha256) throw integrityMismatch(key, 'sha256', expected.sha256, fetched.sha256);
}

/** Waits for every stage; the first failure aborts the rest, and the most explanatory one is thrown. */
async function settleAll(stages: Promise<unknown>[], abort: AbortController): Promise<void> {
  const settled = await Promise.allSettled(
    stages.map((p) =>
      p.catch((error: unknown) => {
        // An abort-class failure is a consequence (a stream cut short by another stage): the
        // stage that caused it aborts the rest, and stopping zstd early would hide its verdict.
        if (!abort.signal.aborted && !isPmsError(error, 'PMS_ERR_ABORTED')) abort.abort(error);
        throw error;
      }),
    ),
  );
  const errors = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => s.reason as unknown);
  const failure = pickRootCause(errors);
  if (failure !== undefined) throw failure;
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? text;
}
