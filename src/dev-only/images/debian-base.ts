import { spawn } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { childEnv } from '../../process/child-env.js';
import { runTool } from '../../process/tool-process.js';
import { cacheDir, recipeTag } from './cache.js';
import { HOST_APT_ARCHIVES } from './host-caches.js';
import { imageExists, podmanEnv, podmanLoud } from './podman.js';

const MIRROR = 'http://deb.debian.org/debian';
const SECURITY = 'http://deb.debian.org/debian-security';
// Security updates too: Debian's point releases lag, and the PostgreSQL stand-in should carry
// the newest bookworm minor (the one pinned upstream, as closely as Debian allows).
const SOURCES = [`deb ${MIRROR} bookworm main`, `deb ${MIRROR} bookworm-updates main`, `deb ${SECURITY} bookworm-security main`, ''].join(
  '\n',
);

/** tar's stdout into podman import's stdin, both checked. */
async function importTree(dir: string, image: string): Promise<void> {
  const tar = spawn('tar', ['-C', dir, '--numeric-owner', '-c', '.'], { env: childEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
  const importer = spawn('podman', ['import', '-', image], { env: podmanEnv(), stdio: ['pipe', 'inherit', 'inherit'] });
  tar.stdout.pipe(importer.stdin);
  const exit = (child: import('node:child_process').ChildProcess, name: string) =>
    new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${name} exited with status ${code}`))));
    });
  await Promise.all([exit(tar, 'tar'), exit(importer, 'podman import')]);
}

/**
 * Debian bookworm, minbase, made here with debootstrap (no registry is reachable) and imported
 * as an image: the root of every local base. Cached under a tag derived from its recipe.
 */
export function debianBaseTag(): string {
  return `localhost/pms-dev-base/debian:bookworm-${recipeTag('minbase', MIRROR, SOURCES)}`;
}

/**
 * debootstrap's package cache, seeded with hard links to the host's .deb files (apt's cache is
 * never written: debootstrap adds its downloads to our directory only). debootstrap checks each
 * file against the mirror's checksums before using it.
 */
function seededDebCache(root: string): string {
  const dir = cacheDir(root, 'downloads', 'debootstrap-debs');
  if (!existsSync(HOST_APT_ARCHIVES)) return dir;
  for (const name of readdirSync(HOST_APT_ARCHIVES)) {
    if (!name.endsWith('.deb') || existsSync(join(dir, name))) continue;
    try {
      linkSync(join(HOST_APT_ARCHIVES, name), join(dir, name));
    } catch {
      return dir; // another filesystem: debootstrap downloads instead
    }
  }
  return dir;
}

export async function debianBase(root: string): Promise<string> {
  const image = debianBaseTag();
  if (await imageExists(image)) return image;
  const dir = join(cacheDir(root), 'debian-rootfs');
  rmSync(dir, { recursive: true, force: true });
  try {
    await runTool('debootstrap', ['--variant=minbase', `--cache-dir=${seededDebCache(root)}`, 'bookworm', dir, MIRROR]);
    writeFileSync(join(dir, 'etc/apt/sources.list'), SOURCES);
    // What debootstrap downloaded is not part of an image.
    for (const sub of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
      rmSync(join(dir, sub), { recursive: true, force: true });
      mkdirSync(join(dir, sub, 'partial'), { recursive: true });
    }
    await importTree(dir, image);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await podmanLoud(['image', 'exists', image]);
  return image;
}
