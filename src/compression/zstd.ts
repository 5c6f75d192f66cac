import { cpus } from 'node:os';
import type { Readable } from 'node:stream';
import { PmsError } from '../errors/catalogue.js';
import { type ToolProcess, startTool } from '../process/tool-process.js';

export interface ZstdOptions {
  /** Compression level (default 3, zstd's own default); the backup pipelines choose theirs. */
  readonly level?: number;
  /** Worker threads (-T); defaults to the number of cores, capped at 4. */
  readonly threads?: number;
  readonly signal?: AbortSignal;
}

/** A `zstd` process reading stdin and writing stdout (the real program, multi-threaded). */
export function startCompressor(options: ZstdOptions = {}): ToolProcess {
  return startTool('zstd', [...levelAndThreads(options), '-q', '-c', '-'], {
    stdin: 'pipe',
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

export interface ZstdCounts {
  /** Bytes zstd read (the uncompressed size), exact. */
  readonly plain: number;
  /** Bytes zstd wrote (the compressed size), exact. */
  readonly compressed: number;
}

export interface PipedCompressor extends ToolProcess {
  /**
   * Exact byte counts from zstd's own end-of-run summary; only after `done` resolved. Throws
   * PMS_ERR_TOOL_FAILED if the summary is missing or unreadable (a zstd whose output format we
   * do not know), so a manifest never records a size we did not read.
   */
  counts(): ZstdCounts;
}

/**
 * `zstd` reading another program's stdout directly: the producer's pipe is handed to zstd as
 * its stdin, so the uncompressed bytes never pass through Node (on 2 cores that copy cost ~0.7
 * CPU-seconds per 410 MB of pg_dump output, see docs/performance.md). Our own handle on the
 * pipe is closed at once, so if zstd dies the producer gets EPIPE instead of blocking forever.
 *
 * The uncompressed size can then only come from zstd itself: `-vv` makes it print exact byte
 * counts (`(409994468 B => 121865800 B, ...)`, unscaled from verbosity 4 on) on stderr at the
 * end. Callers should check `counts().compressed` against the bytes they received.
 */
export function startPipedCompressor(input: Readable, options: ZstdOptions = {}): PipedCompressor {
  // startTool types stdin as 'pipe' | 'ignore'; Node's spawn also accepts a stream backed by a
  // file descriptor, which it duplicates into the child (documented `stdio` behaviour).
  const stdin = input as unknown as 'pipe';
  const tool = startTool('zstd', [...levelAndThreads(options), '-vv', '--no-progress', '-c', '-'], {
    stdin,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  input.destroy();
  return { ...tool, counts: () => parseZstdCounts(tool.stderr()) };
}

/**
 * Parses zstd's final summary line. zstd ≥ 1.5 at verbosity ≥ 4 prints `(N B => M B, <dst>)`;
 * older releases print `(N => M bytes, <dst>)`. The last such line wins.
 */
export function parseZstdCounts(stderr: string): ZstdCounts {
  const pattern = /\(\s*(\d+)(?: B)? => \s*(\d+) (?:B|bytes), /g;
  let last: RegExpExecArray | undefined;
  for (let m = pattern.exec(stderr); m !== null; m = pattern.exec(stderr)) last = m;
  const plain = Number(last?.[1]);
  const compressed = Number(last?.[2]);
  if (!last || !Number.isSafeInteger(plain) || !Number.isSafeInteger(compressed)) {
    throw new PmsError(
      'PMS_ERR_TOOL_FAILED',
      `zstd did not report exact byte counts (expected "(<n> B => <m> B, ..." on stderr with -vv); this zstd version is not supported: ${stderr.trim().split('\n').slice(-2).join(' | ') || '(no output)'}`,
      {
        details: { tool: 'zstd' },
      },
    );
  }
  return { plain, compressed };
}

/** `zstd -d`: fails (non-zero) on a corrupt or truncated frame thanks to zstd's checksums. */
export function startDecompressor(options: { signal?: AbortSignal } = {}): ToolProcess {
  return startTool('zstd', ['-d', '-q', '-c', '-'], { stdin: 'pipe', ...(options.signal ? { signal: options.signal } : {}) });
}

function levelAndThreads(options: ZstdOptions): string[] {
  const threads = options.threads ?? Math.min(4, Math.max(1, cpus().length));
  return [`-${options.level ?? 3}`, `-T${threads}`];
}

/**
 * Compresses a whole file (a WAL segment) into one standard zstd frame, held in memory. zstd
 * reads the file itself: piping 16 MiB through Node cost more CPU than zstd's own work (see
 * docs/performance.md). The caller proves the file did not change meanwhile (push-wal-file.ts).
 */
export async function compressFile(path: string, options: { level: number; signal?: AbortSignal }): Promise<Buffer> {
  const tool = startTool('zstd', [`-${options.level}`, '-T1', '-q', '-c', '--', path], options.signal ? { signal: options.signal } : {});
  const chunks: Buffer[] = [];
  tool.child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
  await tool.done;
  return Buffer.concat(chunks);
}
