import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open, readFile, unlink, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { basename, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { PmsError } from '../errors/catalogue.js';
import type { SpawnRelay } from '../process/spawn-relay.js';
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

export interface PipedDecompressor extends ToolProcess {
  /** The exact decompressed size, from zstd's own summary; only after `done` resolved. */
  plainBytes(): number;
}

/**
 * `zstd -d` writing straight into `output` (another program's stdin pipe: tar in a base-backup
 * restore), so the plaintext never passes through this process: for a 1.9 GB cluster that was
 * ~1.5 s of Node's CPU in pipe reads, writes and garbage collection (docs/performance.md).
 * Our copy of `output` is closed here, so the reader sees end-of-file when zstd exits. The
 * size comes from zstd's `-v` summary (`/*stdin*\ : <n> bytes`).
 */
export function startPipedDecompressor(output: Writable, options: { signal?: AbortSignal } = {}): PipedDecompressor {
  // As in startPipedCompressor: spawn duplicates the stream's descriptor into the child.
  const stdout = output as unknown as 'pipe';
  const tool = startTool('zstd', ['-d', '-v', '--no-progress', '-c', '-'], {
    stdin: 'pipe',
    stdout,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  output.destroy();
  return {
    ...tool,
    plainBytes: () => {
      const match = /: (\d+) bytes\s*$/m.exec(tool.stderr());
      const bytes = Number(match?.[1]);
      if (!match || !Number.isSafeInteger(bytes)) {
        throw new PmsError(
          'PMS_ERR_TOOL_FAILED',
          `zstd did not report the decompressed size (expected "<name> : <n> bytes" on stderr with -v): ${tool.stderr().trim().split('\n').slice(-2).join(' | ') || '(no output)'}`,
          { details: { tool: 'zstd' } },
        );
      }
      return bytes;
    },
  };
}

function levelAndThreads(options: ZstdOptions): string[] {
  const threads = options.threads ?? Math.min(4, Math.max(1, cpus().length));
  return [`-${options.level ?? 3}`, `-T${threads}`];
}

/**
 * zlib's own zstd (Node >= 22.15 / 23.8; the images run Node 24), feature-detected: no child
 * process at all. Node 20 has none, and then the `zstd` program does the work.
 */
interface NativeZstdOptions {
  readonly params?: Record<number, number>;
  readonly chunkSize?: number;
  readonly maxOutputLength?: number;
}
interface NativeZstd {
  createZstdCompress(options: NativeZstdOptions): NodeJS.ReadWriteStream;
  createZstdDecompress(options: NativeZstdOptions): NodeJS.ReadWriteStream;
  zstdCompress(input: Uint8Array, options: NativeZstdOptions, callback: (error: Error | null, result: Buffer) => void): void;
  zstdDecompress(input: Uint8Array, options: NativeZstdOptions, callback: (error: Error | null, result: Buffer) => void): void;
  readonly constants: Record<string, number>;
}
const native =
  typeof (zlib as unknown as Partial<NativeZstd>).createZstdCompress === 'function' ? (zlib as unknown as NativeZstd) : undefined;

/** Whether this Node compresses and decompresses zstd in-process (zlib) rather than with the program. */
export const NATIVE_ZSTD = native !== undefined;

/**
 * How a long-running process runs per-segment zstd: through its spawn relay (so it never forks
 * itself, process/spawn-relay.ts), with scratch files in `scratchDir` (private to it, on the
 * same file system as the WAL, never /tmp: compressed WAL is patient data).
 */
export interface SegmentZstd {
  readonly relay: SpawnRelay;
  readonly scratchDir: string;
}

export interface FileZstdOptions {
  readonly signal?: AbortSignal;
  /** Unset: zstd is a child of this process (one-shot commands, where a fork is cheap). */
  readonly via?: SegmentZstd | undefined;
  /** Tests only: use the program even where zlib has zstd. */
  readonly program?: boolean;
}

/** Upper bound for one decompressed WAL file (a segment is 16 MiB; larger segments are not supported). */
const MAX_DECOMPRESSED = 64 * 1024 * 1024;

/**
 * zlib's output chunk for a decompressed segment: one 16 MiB segment fits in one chunk. With
 * zlib's default (16 KiB) a segment came back as ~1000 pieces, each a round trip between the
 * thread pool and the main thread, then concatenated: 42 ms of CPU (26 ms on the main thread)
 * per segment against 9 ms (2 ms) with one chunk (Node 24, docs/performance.md).
 */
const SEGMENT_CHUNK = 16 * 1024 * 1024 + 64 * 1024;
const OUTPUT_CHUNK = 4 * 1024 * 1024;

/**
 * Compresses bytes already in memory (a WAL segment the caller read and hashed) into one
 * standard zstd frame with its content checksum, on libuv's thread pool (zlib's async API): the
 * main thread is free meanwhile. Only where zlib has zstd (NATIVE_ZSTD).
 */
export async function compressBytes(plain: Uint8Array, level: number): Promise<Buffer> {
  if (!native) throw new PmsError('PMS_ERR_INTERNAL', 'compressBytes needs zlib zstd (Node >= 22.15)');
  const params = { [native.constants['ZSTD_c_compressionLevel']!]: level, [native.constants['ZSTD_c_checksumFlag']!]: 1 };
  return new Promise<Buffer>((resolve, reject) =>
    native.zstdCompress(plain, { params, chunkSize: OUTPUT_CHUNK }, (error, result) => (error ? reject(error) : resolve(result))),
  );
}

/**
 * Decompresses one frame held in memory into memory, on the thread pool; zstd checks the
 * frame's content checksum when it has one. Only where zlib has zstd (NATIVE_ZSTD). A corrupt
 * frame rejects with zlib's error.
 */
export async function decompressBytes(frame: Uint8Array): Promise<Buffer> {
  if (!native) throw new PmsError('PMS_ERR_INTERNAL', 'decompressBytes needs zlib zstd (Node >= 22.15)');
  return new Promise<Buffer>((resolve, reject) =>
    native.zstdDecompress(frame, { maxOutputLength: MAX_DECOMPRESSED, chunkSize: SEGMENT_CHUNK }, (error, result) =>
      error ? reject(error) : resolve(result),
    ),
  );
}

/**
 * zlib's output piece when a frame is decompressed into a file: one 16 MiB buffer per segment
 * cost 58-60 ms of CPU (41-43 ms of it system time: a fresh mapping faulted in page by page and
 * given back) against 19-22 ms in 1 MiB pieces written as they come (Node 24,
 * bench/zstd-decompress.mjs; docs/performance.md, "Session 10").
 */
const FILE_CHUNK = 1024 * 1024;

/**
 * Decompresses one frame held in memory into `file`, in 1 MiB pieces on the thread pool, each
 * handed to `onChunk` (a hash) and written before the next is made (backpressure). Returns the
 * bytes written; more than one segment's upper bound is refused. zstd checks the frame's
 * content checksum at its end: a corrupt frame rejects, and the caller removes the file. Only
 * where zlib has zstd (NATIVE_ZSTD).
 */
export async function decompressBytesInto(
  frame: Uint8Array,
  file: FileHandle,
  onChunk?: (chunk: Buffer) => void,
  signal?: AbortSignal,
): Promise<number> {
  if (!native) throw new PmsError('PMS_ERR_INTERNAL', 'decompressBytesInto needs zlib zstd (Node >= 22.15)');
  let bytes = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      bytes += chunk.byteLength;
      if (bytes > MAX_DECOMPRESSED) {
        done(new PmsError('PMS_ERR_INTEGRITY', `a WAL file decompresses to more than ${MAX_DECOMPRESSED} bytes`));
        return;
      }
      onChunk?.(chunk);
      file.write(chunk).then(() => done(), done);
    },
  });
  await pipeline(Readable.from([frame]), native.createZstdDecompress({ chunkSize: FILE_CHUNK }), sink, ...(signal ? [{ signal }] : []));
  return bytes;
}

const ZSTD_MAGIC = 0xfd2fb528;

/**
 * Whether `frame` is exactly one standard zstd frame that carries a content checksum (and no
 * dictionary), by walking its header and block headers (RFC 8878 section 3.1.1): then a
 * successful decompression proves the output is the content the compressor saw (zstd checks
 * the checksum before it reports success). False for anything else (skippable or concatenated
 * frames, no checksum, trailing bytes, a truncated header), and the caller must check the
 * output another way.
 */
export function isSingleChecksummedFrame(frame: Uint8Array): boolean {
  if (frame.byteLength < 6) return false;
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (view.getUint32(0, true) !== ZSTD_MAGIC) return false;
  const descriptor = view.getUint8(4);
  const contentSizeFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const reserved = (descriptor >> 3) & 1;
  const checksum = (descriptor >> 2) & 1;
  const dictionaryFlag = descriptor & 3;
  if (reserved !== 0 || checksum !== 1 || dictionaryFlag !== 0) return false;
  const contentSizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][contentSizeFlag]!;
  let offset = 5 + (singleSegment ? 0 : 1) + contentSizeBytes;
  for (;;) {
    if (offset + 3 > frame.byteLength) return false;
    const header = view.getUint8(offset) | (view.getUint8(offset + 1) << 8) | (view.getUint8(offset + 2) << 16);
    const last = header & 1;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3) return false;
    offset += 3 + (type === 1 ? 1 : size);
    if (last) break;
  }
  return offset + 4 === frame.byteLength;
}

/**
 * Compresses a whole file (a WAL segment) into one standard zstd frame, held in memory. zstd
 * reads the file itself: piping 16 MiB through Node cost more CPU than zstd's own work (see
 * docs/performance.md). The caller proves the file did not change meanwhile (push-wal-file.ts).
 */
export async function compressFile(path: string, options: FileZstdOptions & { level: number }): Promise<Buffer> {
  if (native && !options.program) {
    const params = { [native.constants['ZSTD_c_compressionLevel']!]: options.level, [native.constants['ZSTD_c_checksumFlag']!]: 1 };
    // 4 MiB output chunks: zlib's default 16 KiB made a compressed segment ~200 pieces to collect.
    const compressor = native.createZstdCompress({ params, chunkSize: OUTPUT_CHUNK });
    const collected = buffer(compressor as unknown as Readable);
    await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), compressor, options.signal ? { signal: options.signal } : {});
    return collected;
  }
  // --single-thread, not -T1: -T1 still takes the multi-threaded path with its job buffers
  // (~2600 first-touch page faults per segment against ~520; 0.10-0.21 s wall against 0.06-0.07).
  const args = [`-${options.level}`, '--single-thread', '-q'];
  if (options.via) {
    const output = scratchPath(options.via.scratchDir, basename(path));
    try {
      await options.via.relay.run('zstd', [...args, '-f', '-o', output, '--', path], options.signal ? { signal: options.signal } : {});
      return await readFile(output);
    } finally {
      await unlink(output).catch(() => undefined);
    }
  }
  const tool = startTool('zstd', [...args, '-c', '--', path], options.signal ? { signal: options.signal } : {});
  const chunks: Buffer[] = [];
  tool.child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
  await tool.done;
  return Buffer.concat(chunks);
}

/**
 * Decompresses one zstd frame held in memory (a decrypted WAL object) into a new file `output`
 * (mode 0600; not yet fsynced: the caller hashes and syncs it). A corrupt or truncated frame
 * fails here (zstd's content checksum) with PMS_ERR_TOOL_FAILED, or zlib's error on Node 24,
 * and leaves no `output` behind.
 */
export async function decompressToFile(frame: Uint8Array, output: string, options: FileZstdOptions = {}): Promise<void> {
  try {
    if (native && !options.program) {
      const handle = await open(output, 'wx', 0o600);
      try {
        await decompressBytesInto(frame, handle, undefined, options.signal);
      } finally {
        await handle.close();
      }
      return;
    }
    const input = `${output}.zst`;
    try {
      await writeFile(input, frame, { mode: 0o600, flag: 'wx' });
      // zstd creates `output` itself; 0600 from the input's mode, as zstd copies it.
      const args = ['-d', '-q', '-o', output, '--', input];
      if (options.via) await options.via.relay.run('zstd', args, options.signal ? { signal: options.signal } : {});
      else await startTool('zstd', args, { stdout: 'ignore', ...(options.signal ? { signal: options.signal } : {}) }).done;
    } finally {
      await unlink(input).catch(() => undefined);
    }
  } catch (error) {
    await unlink(output).catch(() => undefined);
    throw error;
  }
}

function scratchPath(directory: string, name: string): string {
  return join(directory, `.pms-zstd-${randomBytes(4).toString('hex')}-${name}`);
}
