import { Readable, Writable, addAbortSignal } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PmsError } from '../../errors/catalogue.js';
import { checkKey, checkPrefix, compareKeys } from '../object-key.js';
import { checkMetadata } from '../object-metadata.js';
import { readAll } from '../read-all.js';
import type { DeleteResult, ObjectInfo, PutOptions, PutResult, Storage } from '../storage.js';

/** Same piece size a file read stream uses, so consumers see chunks like the real drivers give. */
const READ_CHUNK_BYTES = 64 * 1024;

interface StoredObject {
  readonly chunks: readonly Buffer[];
  readonly bytes: number;
  readonly modifiedAt: Date;
  readonly metadata: Readonly<Record<string, string>>;
}

/** A put whose body has not ended yet: what S3 calls a multipart upload and fs a temporary file. */
interface PendingPut {
  readonly key: string;
  readonly startedAt: Date;
  removed: boolean;
}

export interface MemoryStorageOptions {
  /** Shown in `location` (memory://<name>) and in messages. */
  readonly name?: string;
  /** Time of writes (modifiedAt) and of put starts (removeIncomplete); tests pass a fixed clock. */
  readonly now?: () => Date;
}

/**
 * A Storage driver holding objects in this process's memory, for fast tests of modules that
 * need a repository (catalog, audit chain, lock). It keeps the contract of the real drivers
 * (storage-contract.ts): keys and metadata checked the same way, a put invisible until its body
 * has ended without error, ifAbsent refused with PMS_ERR_TARGET_EXISTS, listings in byte order.
 *
 * Memory: every object is held in full, as copies of the chunks its body produced (callers may
 * reuse their buffers). A put of N bytes holds those N bytes while it runs and commits the same
 * buffers, so it never needs a second copy; reads copy 64 KiB at a time so a consumer cannot
 * change a stored object. Not for backup data of real size, and deliberately not reachable from
 * open-storage.ts: production must never keep a repository in RAM.
 *
 * Listings carry no metadata (as on S3, the strictest backend): code that reads metadata must
 * call head(), and a test against this driver shows it when it does not.
 */
export class MemoryStorage implements Storage {
  readonly location: string;
  readonly #objects = new Map<string, StoredObject>();
  readonly #pending = new Set<PendingPut>();
  readonly #now: () => Date;

  constructor(options: MemoryStorageOptions = {}) {
    this.location = `memory://${options.name ?? 'repository'}`;
    this.#now = options.now ?? (() => new Date());
  }

  /** Puts that started and have neither committed nor failed (what removeIncomplete would remove). */
  get incompletePuts(): number {
    return this.#pending.size;
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<PutResult> {
    let metadata: Readonly<Record<string, string>>;
    try {
      checkKey(key);
      metadata = checkMetadata(options.metadata);
      if (options.signal?.aborted) throw this.#aborted(key, options.signal.reason);
      // Fails before reading the body, as S3Storage does; the check at commit below is the one that counts.
      if (options.ifAbsent && this.#objects.has(key)) throw this.#exists(key);
    } catch (error) {
      body.destroy(); // release the producer (e.g. a child process) that nobody will read
      throw error;
    }

    const pending: PendingPut = { key, startedAt: this.#now(), removed: false };
    this.#pending.add(pending);
    const chunks: Buffer[] = [];
    let bytes = 0;
    const removedError = (): PmsError =>
      new PmsError('PMS_ERR_NOT_FOUND', `cannot store ${key}: its unfinished upload was removed by removeIncomplete`, {
        details: { key, location: this.location },
      });
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        if (pending.removed) {
          callback(removedError());
          return;
        }
        chunks.push(Buffer.from(chunk));
        bytes += chunk.length;
        callback();
      },
      final(callback) {
        callback(pending.removed ? removedError() : null);
      },
    });
    // pipeline() hands each side's error to the other: remember the body's own (pg_dump died).
    let bodyError: unknown;
    body.once('error', (error) => {
      bodyError ??= error;
    });
    try {
      await pipeline(body, sink, options.signal ? { signal: options.signal } : {});
      if (pending.removed) throw removedError();
      // Check and write in one synchronous step: concurrent ifAbsent puts cannot both win.
      if (options.ifAbsent && this.#objects.has(key)) throw this.#exists(key);
      this.#objects.set(key, { chunks, bytes, modifiedAt: this.#now(), metadata });
      return { key, bytes };
    } catch (error) {
      body.destroy();
      if (options.signal?.aborted) throw this.#aborted(key, error);
      throw bodyError ?? error;
    } finally {
      this.#pending.delete(pending);
    }
  }

  async putBytes(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    return this.put(key, Readable.from([Buffer.from(body)]), options);
  }

  async get(key: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    const object = this.#objects.get(checkKey(key));
    if (object === undefined) throw this.#notFound(key);
    // Holds this version of the object: an overwrite while reading does not change what is read.
    const { chunks } = object;
    let index = 0;
    let offset = 0;
    const stream = new Readable({
      highWaterMark: READ_CHUNK_BYTES,
      read() {
        while (index < chunks.length && offset >= (chunks[index]?.length ?? 0)) {
          index += 1;
          offset = 0;
        }
        const chunk = chunks[index];
        if (chunk === undefined) {
          this.push(null);
          return;
        }
        const end = Math.min(offset + READ_CHUNK_BYTES, chunk.length);
        this.push(Buffer.from(chunk.subarray(offset, end)));
        offset = end;
      },
    });
    return options.signal ? addAbortSignal(options.signal, stream) : stream;
  }

  async getBytes(key: string): Promise<Buffer> {
    return readAll(await this.get(key));
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const object = this.#objects.get(checkKey(key));
    if (object === undefined) return undefined;
    return { key, bytes: object.bytes, modifiedAt: new Date(object.modifiedAt), metadata: { ...object.metadata } };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    // A snapshot, like one page of an S3 listing: objects written meanwhile may or may not show.
    const keys = [...this.#objects.keys()].filter((key) => key.startsWith(prefix)).sort(compareKeys);
    for (const key of keys) {
      const object = this.#objects.get(key);
      if (object === undefined) continue; // deleted while listing
      yield { key, bytes: object.bytes, modifiedAt: new Date(object.modifiedAt), metadata: {} };
    }
  }

  /** No versions and no retention here: purge is the same delete. */
  async delete(key: string): Promise<DeleteResult> {
    this.#objects.delete(checkKey(key));
    return {};
  }

  async probe(): Promise<void> {
    // Memory always answers and accepts writes; there is nothing to reach.
  }

  /**
   * Removes puts started before `olderThan` that are still running. As on the real backends
   * (an aborted multipart upload, a deleted temporary file), the writer then fails and nothing
   * is stored under its key.
   */
  async removeIncomplete(olderThan: Date): Promise<number> {
    let removed = 0;
    for (const pending of this.#pending) {
      if (pending.startedAt >= olderThan) continue;
      pending.removed = true;
      this.#pending.delete(pending);
      removed += 1;
    }
    return removed;
  }

  async close(): Promise<void> {
    // Nothing pooled. The objects stay: a test may inspect the repository after a command closed it.
  }

  #notFound(key: string): PmsError {
    return new PmsError('PMS_ERR_NOT_FOUND', `${key} does not exist in ${this.location}`, { details: { key, location: this.location } });
  }

  #exists(key: string): PmsError {
    return new PmsError('PMS_ERR_TARGET_EXISTS', `${key} already exists in ${this.location}; it is write-once and was left unchanged`, {
      details: { key, location: this.location },
    });
  }

  #aborted(key: string, cause: unknown): PmsError {
    return new PmsError('PMS_ERR_ABORTED', `writing ${key} was cancelled; nothing was stored under it`, { cause });
  }
}
