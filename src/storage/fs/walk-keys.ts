import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { RESERVED_PREFIX, compareKeys } from '../object-key.js';

export interface WalkedFile {
  readonly key: string;
  readonly path: string;
}

/**
 * Yields every regular file under `root` whose key starts with `prefix`, in the byte order S3
 * lists keys in. Sorting each directory by `name` for files and `name + '/'` for directories
 * gives global key order (every key below `a` starts with `a/`), so keys stream out one
 * directory at a time without collecting the whole tree. Reserved names (temporary files,
 * sidecars) are never shown. Symbolic links are not followed.
 */
/** A directory's entries; none when it does not exist (a prefix nothing was written under yet). */
async function entriesOf(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw error;
  }
}

export async function* walkKeys(root: string, prefix: string): AsyncGenerator<WalkedFile> {
  yield* walk(root, '', prefix);
}

async function* walk(dir: string, keyBase: string, prefix: string): AsyncGenerator<WalkedFile> {
  const entries = await entriesOf(dir);
  const candidates = entries
    .filter((entry) => !entry.name.startsWith(RESERVED_PREFIX) && (entry.isFile() || entry.isDirectory()))
    .map((entry) => ({ entry, sortKey: keyBase + entry.name + (entry.isDirectory() ? '/' : '') }))
    .filter(({ sortKey }) => sortKey.startsWith(prefix) || prefix.startsWith(sortKey))
    .sort((a, b) => compareKeys(a.sortKey, b.sortKey));
  for (const { entry, sortKey } of candidates) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      yield* walk(path, sortKey, prefix);
    } else if (sortKey.startsWith(prefix)) {
      yield { key: sortKey, path };
    }
  }
}

/** Every reserved temporary file (`.pms-tmp-*`) under `dir`, for cleanup of killed writers. */
export async function* walkTemporaryFiles(dir: string): AsyncGenerator<string> {
  const entries = await entriesOf(dir);
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walkTemporaryFiles(path);
    else if (entry.isFile() && entry.name.startsWith(`${RESERVED_PREFIX}tmp-`)) yield path;
  }
}
