import { Transform, type TransformCallback } from 'node:stream';

const NEWLINE = 0x0a;
/** A line's start we look at: TOC headers are short (names are at most 63 bytes each). */
const HEAD_BYTES = 1024;
/** A line's end we look at: enough for " FROM stdin;". */
const TAIL_BYTES = 16;
const HEADER = /^-- (?:Data for )?Name: (.*?); Type: (.*?); Schema: (.*?); Owner: /;

/**
 * Passes pg_restore's SQL script through unchanged and remembers on which line each archive
 * entry starts, from the header comment pg_restore writes before it
 * (`-- Data for Name: vitals; Type: TABLE DATA; Schema: telemetry; Owner: …`), so that psql's
 * "line 75: ERROR 23505" can be named as "TABLE DATA telemetry.vitals" without any of the
 * server's message. Rows of a COPY block are never parsed as headers: they are patient data.
 * Lines are counted as psql counts them (COPY rows included), so the tracker must be the last
 * stage before psql.
 */
export class ScriptObjects extends Transform {
  #line = 1;
  #inCopy = false;
  #head: Buffer[] = [];
  #headLength = 0;
  #tail: Buffer = Buffer.alloc(0);
  #lineLength = 0;
  readonly #starts: number[] = [];
  readonly #labels: string[] = [];

  /** The archive entry the script was in at `line` (1-based), e.g. "TABLE DATA public.vitals". */
  objectAt(line: number): string | undefined {
    let low = 0;
    let high = this.#starts.length - 1;
    let found: number | undefined;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if ((this.#starts[middle] ?? 0) <= line) {
        found = middle;
        low = middle + 1;
      } else high = middle - 1;
    }
    return found === undefined ? undefined : this.#labels[found];
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(NEWLINE, start);
      if (this.#inCopy && this.#lineLength === 0 && newline !== -1) {
        // A row (or the end marker) wholly inside this chunk: the common case, kept cheap.
        if (newline - start === 2 && chunk[start] === 0x5c && chunk[start + 1] === 0x2e) this.#inCopy = false;
        this.#line += 1;
        start = newline + 1;
        continue;
      }
      this.#collect(chunk.subarray(start, newline === -1 ? chunk.length : newline));
      if (newline === -1) break;
      this.#endLine();
      start = newline + 1;
    }
    callback(null, chunk);
  }

  #collect(piece: Buffer): void {
    if (piece.length === 0) return;
    this.#lineLength += piece.length;
    if (this.#headLength < HEAD_BYTES) {
      const taken = piece.subarray(0, HEAD_BYTES - this.#headLength);
      this.#head.push(taken);
      this.#headLength += taken.length;
    }
    this.#tail = (piece.length >= TAIL_BYTES ? piece : Buffer.concat([this.#tail, piece])).subarray(-TAIL_BYTES);
  }

  #endLine(): void {
    const head = this.#head.length === 1 ? (this.#head[0] as Buffer) : Buffer.concat(this.#head);
    if (this.#inCopy) {
      if (this.#lineLength === 2 && head[0] === 0x5c && head[1] === 0x2e) this.#inCopy = false; // "\."
    } else {
      const text = head.toString('utf8');
      if (text.startsWith('COPY ') && this.#tail.toString('utf8').endsWith(' FROM stdin;')) this.#inCopy = true;
      else {
        const header = HEADER.exec(text);
        if (header) {
          const [, name, type, schema] = header;
          this.#starts.push(this.#line);
          this.#labels.push(`${type} ${schema === '-' ? name : `${schema}.${name}`}`);
        }
      }
    }
    this.#line += 1;
    this.#head = [];
    this.#headLength = 0;
    this.#tail = Buffer.alloc(0);
    this.#lineLength = 0;
  }
}
