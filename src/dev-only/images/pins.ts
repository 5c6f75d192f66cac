import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The upstream bases the Dockerfiles pin, read from the Dockerfiles themselves (one truth). */
export interface BasePins {
  /** e.g. `node:24.22.3-bookworm-slim` */
  readonly node: string;
  /** e.g. `24.22.3` */
  readonly nodeVersion: string;
  /** e.g. `postgres:15.20-bookworm` */
  readonly postgres: string;
  /** e.g. `15.20` */
  readonly postgresVersion: string;
}

export const DOCKERFILES = ['docker/pms-backup.Dockerfile', 'docker/pms-telemetry.Dockerfile', 'docker/postgres.Dockerfile'] as const;

/** Every `FROM image[:tag]` of a Dockerfile's text, stage names and `AS` dropped. */
export function fromImages(dockerfile: string): string[] {
  return [...dockerfile.matchAll(/^FROM\s+(?:--\S+\s+)*(\S+)/gim)].map((m) => m[1] ?? '');
}

function single(images: readonly string[], repository: string): string {
  const tags = [...new Set(images.filter((image) => image.startsWith(`${repository}:`)))];
  if (tags.length !== 1) throw new Error(`the Dockerfiles must pin exactly one ${repository} image, found: ${tags.join(', ') || 'none'}`);
  return tags[0] as string;
}

export function basePins(root: string): BasePins {
  const images = DOCKERFILES.flatMap((file) => fromImages(readFileSync(join(root, file), 'utf8')));
  const node = single(images, 'node');
  const postgres = single(images, 'postgres');
  const nodeVersion = /^node:(\d+\.\d+\.\d+)-bookworm-slim$/.exec(node)?.[1];
  const postgresVersion = /^postgres:(15\.\d+)-bookworm$/.exec(postgres)?.[1];
  if (!nodeVersion || !postgresVersion)
    throw new Error(`unexpected base tags ${node} ${postgres}: expected node:X.Y.Z-bookworm-slim and postgres:15.N-bookworm`);
  return { node, nodeVersion, postgres, postgresVersion };
}
