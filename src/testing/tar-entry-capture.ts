import { Transform, type TransformCallback } from 'node:stream';

const BLOCK = 512;

/**
 * Passes a tar stream through unchanged while keeping the contents of a few named entries
 * (a base backup's backup_label, say), so tests can compare a stored backup with what its
 * manifest claims. Entries bigger than `maxBytes` are not kept.
 */
export class TarEntryCapture extends Transform {
  readonly entries = new Map<string, Buffer>();
  readonly #wanted: ReadonlySet<string>;
  readonly #maxBytes: number;
  #header = Buffer.alloc(0);
  #remaining = 0; // data bytes left in the current entry
  #padding = 0; // padding bytes left after it
  #capture: { name: string; chunks: Buffer[] } | undefined;
  #ended = false;

  constructor(names: readonly string[], maxBytes = 64 * 1024 * 1024) {
    super();
    this.#wanted = new Set(names);
    this.#maxBytes = maxBytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#scan(chunk);
    callback(null, chunk);
  }

  #scan(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.#ended) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, chunk.length - offset);
        this.#capture?.chunks.push(Buffer.from(chunk.subarray(offset, offset + take)));
        this.#remaining -= take;
        offset += take;
        if (this.#remaining === 0 && this.#capture) {
          this.entries.set(this.#capture.name, Buffer.concat(this.#capture.chunks));
          this.#capture = undefined;
        }
        continue;
      }
      if (this.#padding > 0) {
        const skip = Math.min(this.#padding, chunk.length - offset);
        this.#padding -= skip;
        offset += skip;
        continue;
      }
      const need = BLOCK - this.#header.length;
      const part = chunk.subarray(offset, offset + need);
      this.#header = Buffer.concat([this.#header, part]);
      offset += part.length;
      if (this.#header.length < BLOCK) continue;
      this.#startEntry(this.#header);
      this.#header = Buffer.alloc(0);
    }
  }

  #startEntry(header: Buffer): void {
    if (header.every((b) => b === 0)) {
      this.#ended = true; // end-of-archive marker
      return;
    }
    const field = (start: number, length: number): string =>
      header
        .subarray(start, start + length)
        .toString('utf8')
        .replace(/\0.*$/s, '');
    const prefix = field(345, 155);
    const name = (prefix ? `${prefix}/` : '') + field(0, 100);
    const size = Number.parseInt(field(124, 12).trim() || '0', 8);
    this.#remaining = size;
    this.#padding = (BLOCK - (size % BLOCK)) % BLOCK;
    const wanted = this.#wanted.has(name.replace(/^\.\//, '')) && size <= this.#maxBytes;
    this.#capture = wanted ? { name: name.replace(/^\.\//, ''), chunks: [] } : undefined;
    if (wanted && size === 0) {
      this.entries.set(this.#capture!.name, Buffer.alloc(0));
      this.#capture = undefined;
    }
  }
}
