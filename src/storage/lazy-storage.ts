import type { Readable } from 'node:stream';
import type { DeleteOptions, DeleteResult, ObjectInfo, PutOptions, PutResult, Storage } from './storage.js';

/**
 * Defers loading a driver until its first call. The AWS SDK costs ~0.5 s to import; wal-push
 * and wal-fetch start once per WAL segment, and file:// users never need it at all.
 */
export class LazyStorage implements Storage {
  readonly location: string;
  readonly #load: () => Promise<Storage>;
  #driver: Promise<Storage> | undefined;

  constructor(location: string, load: () => Promise<Storage>) {
    this.location = location;
    this.#load = load;
  }

  #get(): Promise<Storage> {
    this.#driver ??= this.#load();
    return this.#driver;
  }

  async put(key: string, body: Readable, options?: PutOptions): Promise<PutResult> {
    return (await this.#get()).put(key, body, options);
  }
  async putBytes(key: string, body: Uint8Array | string, options?: PutOptions): Promise<PutResult> {
    return (await this.#get()).putBytes(key, body, options);
  }
  async get(key: string, options?: { signal?: AbortSignal }): Promise<Readable> {
    return (await this.#get()).get(key, options);
  }
  async getBytes(key: string): Promise<Buffer> {
    return (await this.#get()).getBytes(key);
  }
  async head(key: string): Promise<ObjectInfo | undefined> {
    return (await this.#get()).head(key);
  }
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    yield* (await this.#get()).list(prefix);
  }
  async delete(key: string, options?: DeleteOptions): Promise<DeleteResult> {
    return (await this.#get()).delete(key, options);
  }
  async probe(): Promise<void> {
    return (await this.#get()).probe();
  }
  async removeIncomplete(olderThan: Date): Promise<number> {
    return (await this.#get()).removeIncomplete(olderThan);
  }
  async close(): Promise<void> {
    if (this.#driver) await (await this.#driver).close();
  }
}
