import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

/**
 * Filters the SQL script `pg_restore --data-only -f -` writes: inside each `COPY table (cols)
 * FROM stdin;` block, keeps only rows whose `column` equals `value` (tables without that column
 * keep no rows at all). Everything outside COPY blocks passes unchanged. Line-based, streaming,
 * constant memory. Counts kept rows per table.
 */
export class CopyRowFilter extends Transform {
  readonly kept = new Map<string, number>();
  #pending = '';
  // Chunks end anywhere, also inside a multi-byte character (a patient named Renée).
  readonly #decoder = new StringDecoder('utf8');
  #table: string | undefined;
  #columnIndex = -1;
  readonly #column: string;
  readonly #value: string;

  constructor(column: string, value: string) {
    super();
    this.#column = column;
    this.#value = value;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const text = this.#pending + this.#decoder.write(chunk);
    const lines = text.split('\n');
    this.#pending = lines.pop() ?? '';
    const out: string[] = [];
    for (const line of lines) {
      const kept = this.#line(line);
      if (kept !== undefined) out.push(kept);
    }
    callback(null, out.length ? `${out.join('\n')}\n` : undefined);
  }

  override _flush(callback: TransformCallback): void {
    const rest = this.#pending + this.#decoder.end();
    const kept = rest ? this.#line(rest) : undefined;
    callback(null, kept === undefined ? undefined : `${kept}\n`);
  }

  #line(line: string): string | undefined {
    if (this.#table === undefined) {
      // `.+?`, not `\S+`: a quoted name may hold spaces, and a header not recognised here would
      // let every row of its table through unfiltered.
      const copy = /^COPY (.+?) \((.*)\) FROM stdin;$/.exec(line);
      if (copy) {
        this.#table = copy[1] ?? '';
        const columns = (copy[2] ?? '').split(', ').map((c) => c.replace(/^"|"$/g, ''));
        this.#columnIndex = columns.indexOf(this.#column);
        this.kept.set(this.#table, 0);
      }
      return line;
    }
    if (line === '\\.') {
      this.#table = undefined;
      return line;
    }
    if (this.#columnIndex < 0) return undefined;
    if (line.split('\t')[this.#columnIndex] !== this.#value) return undefined;
    this.kept.set(this.#table, (this.kept.get(this.#table) ?? 0) + 1);
    return line;
  }
}
