import type { DOCKERFILES } from './pins.js';
import { buildCaVolume } from './build-ca.js';
import { hostCacheVolumes } from './host-caches.js';
import { podmanLoud } from './podman.js';

export interface LocalBases {
  /** The upstream tag each Dockerfile names, mapped to the local image that stands in for it. */
  readonly substitutes: ReadonlyMap<string, string>;
}

export interface ProjectImage {
  readonly name: string;
  readonly dockerfile: (typeof DOCKERFILES)[number];
}

/** The three images, tagged as the container test runs them. */
export const PROJECT_IMAGES: readonly ProjectImage[] = [
  { name: 'localhost/pms-backup:dev', dockerfile: 'docker/pms-backup.Dockerfile' },
  { name: 'localhost/pms-telemetry:dev', dockerfile: 'docker/pms-telemetry.Dockerfile' },
  { name: 'localhost/pms-postgres:dev', dockerfile: 'docker/postgres.Dockerfile' },
];

/**
 * Builds one project image from its Dockerfile exactly as CI does, except that every pinned
 * upstream base is swapped for its local stand-in (--build-context: the Dockerfile is not
 * edited), the machine's CA bundle is mounted read-only for npm and its apt and npm caches as
 * throwaway overlays (host-caches.ts). podman's layer cache makes
 * a second build with unchanged sources a matter of seconds.
 */
export async function buildProjectImage(root: string, image: ProjectImage, bases: LocalBases): Promise<void> {
  const contexts = [...bases.substitutes].flatMap(([upstream, local]) => ['--build-context', `${upstream}=container-image://${local}`]);
  await podmanLoud([
    'build',
    '--pull=never',
    '--layers',
    ...contexts,
    ...buildCaVolume(),
    ...hostCacheVolumes(),
    '-f',
    image.dockerfile,
    '-t',
    image.name,
    root,
  ]);
}
