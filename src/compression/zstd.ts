import { cpus } from 'node:os';
import { type ToolProcess, startTool } from '../process/tool-process.js';

export interface ZstdOptions {
  /** Compression level; 3 is zstd's default and measured ~3x faster than pg_dump's zlib. */
  readonly level?: number;
  /** Worker threads (-T); defaults to the number of cores, capped at 4. */
  readonly threads?: number;
  readonly signal?: AbortSignal;
}

/** A `zstd` process reading stdin and writing stdout (the real program, multi-threaded). */
export function startCompressor(options: ZstdOptions = {}): ToolProcess {
  const threads = options.threads ?? Math.min(4, Math.max(1, cpus().length));
  return startTool('zstd', [`-${options.level ?? 3}`, `-T${threads}`, '-q', '-c', '-'], { stdin: 'pipe', ...(options.signal ? { signal: options.signal } : {}) });
}

/** `zstd -d`: fails (non-zero) on a corrupt or truncated frame thanks to zstd's checksums. */
export function startDecompressor(options: { signal?: AbortSignal } = {}): ToolProcess {
  return startTool('zstd', ['-d', '-q', '-c', '-'], { stdin: 'pipe', ...(options.signal ? { signal: options.signal } : {}) });
}
