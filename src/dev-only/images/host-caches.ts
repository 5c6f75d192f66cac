import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * The machine's own download caches, lent to builds as overlay mounts (`:O`: the build sees
 * them and may add to them, its changes are thrown away, the host's files are never written):
 * apt's .deb files and package lists (a fresh CI machine has just downloaded PostgreSQL's
 * packages for its own tests) and npm's cache (`npm ci` on the host filled it). A cold build
 * then fetches only what the host never had. The Dockerfiles are untouched: real CI builds them
 * from the pinned upstream bases with nothing mounted, and an image is the same either way.
 */
const APT_ARCHIVES = '/var/cache/apt/archives';
const APT_LISTS = '/var/lib/apt/lists';

export function hostCacheVolumes(): string[] {
  const mounts: string[] = [];
  for (const dir of [APT_ARCHIVES, APT_LISTS]) if (existsSync(dir)) mounts.push('--volume', `${dir}:${dir}:O`);
  // Builds run npm as root, whose cache is /root/.npm/_cacache.
  const npmCache = join(homedir(), '.npm', '_cacache');
  if (existsSync(npmCache)) mounts.push('--volume', `${npmCache}:/root/.npm/_cacache:O`);
  return mounts;
}

/** debootstrap's cache: the host's .deb files, linked in (not copied) where the filesystem allows. */
export const HOST_APT_ARCHIVES = APT_ARCHIVES;
