import type { BigIntStats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A file's identity as a shell can print it with `stat -c %d-%i-%s-%.9Y-%.9Z`: the notes that
 * let a shell command answer for a WAL file without starting Node (wal-push's archived-ahead
 * notes, wal-fetch's prefetched-in-place notes) are *named* by it, so Node and the shell check
 * the same thing. Any write, truncate or replacement of the file moves ctime or the inode. This
 * module is on the fast paths of both commands: it imports nothing but node:fs and node:path.
 */
export interface FileIdentity {
  readonly dev: string;
  readonly ino: string;
  readonly size: string;
  readonly mtimeNs: string;
  readonly ctimeNs: string;
}

export function fileIdentity(stats: BigIntStats): FileIdentity {
  return {
    // Unsigned, as stat(1) prints them: Node's bigint stats are signed 64-bit (an NFS inode can exceed 2^63).
    dev: String(BigInt.asUintN(64, stats.dev)),
    ino: String(BigInt.asUintN(64, stats.ino)),
    size: String(stats.size),
    mtimeNs: String(stats.mtimeNs),
    ctimeNs: String(stats.ctimeNs),
  };
}

export function sameFile(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/** Nanoseconds as GNU stat's `%.9Y` prints them: seconds, a dot, nine digits. */
function statSeconds(ns: string): string {
  const value = BigInt(ns);
  // Before 1970 the sign leads and the fraction counts away from zero, as stat(1) prints it.
  const magnitude = value < 0n ? -value : value;
  return `${value < 0n ? '-' : ''}${magnitude / 1_000_000_000n}.${String(magnitude % 1_000_000_000n).padStart(9, '0')}`;
}

/** `<dev>-<inode>-<size>-<mtime>-<ctime>`: what `stat -c %d-%i-%s-%.9Y-%.9Z` prints for the file. */
export function identityToken(file: FileIdentity): string {
  return `${file.dev}-${file.ino}-${file.size}-${statSeconds(file.mtimeNs)}-${statSeconds(file.ctimeNs)}`;
}

/** `<pid>-<start time>` from postmaster.pid's first and third lines, if that file is there. */
function postmasterFrom(text: string): string | undefined {
  const lines = text.split('\n');
  const pid = lines[0]?.trim();
  const start = lines[2]?.trim();
  return pid && start ? `${pid}-${start}` : undefined;
}

/** The running postmaster of `dataDir` as `<pid>-<start time>`, the part of a note that binds it to one server run. */
export async function postmasterOfDataDir(dataDir: string): Promise<string | undefined> {
  return readFile(join(dataDir, 'postmaster.pid'), 'utf8').then(postmasterFrom, () => undefined);
}

export function postmasterOfDataDirSync(dataDir: string): string | undefined {
  try {
    return postmasterFrom(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8'));
  } catch {
    return undefined;
  }
}
