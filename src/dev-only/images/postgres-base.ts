import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir, recipeTag } from './cache.js';
import { hostCacheVolumes } from './host-caches.js';
import { imageExists, podman, podmanLoud } from './podman.js';

const ENTRYPOINT = fileURLToPath(new URL('../../../src/dev-only/images/postgres-standin/docker-entrypoint.sh', import.meta.url));

// The official image's layout where the manifests rely on it: postgres is uid/gid 999, the
// binaries are on PATH, PGDATA defaults to /var/lib/postgresql/data, the socket directory is
// /var/run/postgresql, and no cluster is created at install time (create_main_cluster = false
// before postgresql-15 is installed, as the official image does).
const CONTAINERFILE = `ARG BASE
FROM \${BASE}
RUN groupadd --system --gid 999 postgres \\
 && useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres \\
 && apt-get update \\
 && apt-get install -y --no-install-recommends postgresql-common \\
 && sed -ri 's/^#?\\s*create_main_cluster\\s*=.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf \\
 && apt-get install -y --no-install-recommends postgresql-15 \\
 && rm -rf /var/lib/apt/lists/* \\
 && test ! -e /var/lib/postgresql/15/main \\
 && install -d -o postgres -g postgres -m 3777 /var/run/postgresql \\
 && install -d -o postgres -g postgres -m 1777 /var/lib/postgresql/data
ENV PATH=$PATH:/usr/lib/postgresql/15/bin PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
`;

// Part of the recipe: with apt's cache mounted, the downloaded .debs (74 MB) stay out of the image.
const APT_CACHE_MOUNTED = 'apt cache mounted';

/**
 * A test-only stand-in for the official postgres:15.N-bookworm image: Debian's postgresql-15 on
 * the Debian base with an entrypoint of our own (postgres-standin/docker-entrypoint.sh). Debian's
 * minor version may differ from the pin; that is reported, not hidden.
 */
export function postgresBaseTag(debian: string, pinnedVersion: string): string {
  const entrypoint = readFileSync(ENTRYPOINT, 'utf8');
  return `localhost/pms-dev-base/postgres:${pinnedVersion}-bookworm-${recipeTag(debian, CONTAINERFILE, entrypoint, APT_CACHE_MOUNTED)}`;
}

export async function postgresBase(root: string, debian: string, pinnedVersion: string): Promise<string> {
  const image = postgresBaseTag(debian, pinnedVersion);
  if (!(await imageExists(image))) {
    const context = join(cacheDir(root), 'postgres-context');
    rmSync(context, { recursive: true, force: true });
    mkdirSync(context, { recursive: true });
    writeFileSync(join(context, 'Containerfile'), CONTAINERFILE);
    copyFileSync(ENTRYPOINT, join(context, 'docker-entrypoint.sh'));
    chmodSync(join(context, 'docker-entrypoint.sh'), 0o755);
    await podmanLoud([
      'build',
      '--pull=never',
      '--build-arg',
      `BASE=${debian}`,
      ...hostCacheVolumes(),
      '-t',
      image,
      '-f',
      join(context, 'Containerfile'),
      context,
    ]);
    rmSync(context, { recursive: true, force: true });
  }
  const version = (await podman(['run', '--rm', '--entrypoint', 'postgres', image, '--version'])).trim();
  if (!version.includes(` ${pinnedVersion}`)) {
    console.warn(`images: the PostgreSQL stand-in has ${version}; the Dockerfiles pin ${pinnedVersion} (Debian's bookworm minor differs)`);
  }
  return image;
}
