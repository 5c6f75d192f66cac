import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** Where downloads and build contexts of the local bases live (.tmp/ is ignored by git). */
export function cacheDir(root: string, ...parts: string[]): string {
  const dir = join(root, '.tmp', 'images', ...parts);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * A short digest of everything that makes a base what it is: the tag carries it, so a changed
 * recipe builds a new base while an unchanged one is found and reused.
 */
export function recipeTag(...inputs: string[]): string {
  const hash = createHash('sha256');
  for (const input of inputs) hash.update(input).update('\0');
  return hash.digest('hex').slice(0, 12);
}
