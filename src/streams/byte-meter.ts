import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/** Pass-through that counts bytes and (optionally) hashes them with sha256 as they flow. */
export class ByteMeter extends Transform {
  bytes = 0;
  readonly #hash: Hash | undefined;
  #digest: string | undefined;
  readonly #onProgress: ((bytes: number) => void) | undefined;

  constructor(options: { sha256?: boolean; onProgress?: (bytes: number) => void } = {}) {
    super();
    this.#hash = options.sha256 ? createHash('sha256') : undefined;
    this.#onProgress = options.onProgress;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.#hash?.update(chunk);
    this.#onProgress?.(this.bytes);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#hash) this.#digest = this.#hash.digest('hex');
    callback();
  }

  /** The sha256 if everything has passed (the stream ended), else undefined: never a partial digest. */
  get sha256IfEnded(): string | undefined {
    return this.#digest;
  }

  /** Hex sha256 of everything that passed; only after the stream has ended. */
  get sha256(): string {
    if (this.#digest === undefined) throw new Error('ByteMeter.sha256 read before the stream ended');
    return this.#digest;
  }
}

/**
 * Holds back end-of-stream until `gate` settles, and errors instead of ending if it rejects.
 * Used so an object is never committed to storage when the program producing it failed.
 */
export class EndGate extends Transform {
  readonly #gate: () => Promise<unknown>;

  constructor(gate: () => Promise<unknown>) {
    super();
    this.#gate = gate;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#gate().then(
      () => callback(),
      (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
    );
  }
}
