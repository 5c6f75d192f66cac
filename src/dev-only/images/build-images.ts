/**
 * npm run images: builds localhost/pms-backup:dev, localhost/pms-telemetry:dev and
 * localhost/pms-postgres:dev with podman on a machine that reaches no container registry.
 * The bases are made here (debootstrap, Node from the npm registry, Debian's PostgreSQL) and
 * cached as images whose tags carry their recipe's digest, so a second run reuses them.
 * Prints each image's size and the time each step took.
 */
import { fileURLToPath } from 'node:url';
import { debianBase, debianBaseTag } from './debian-base.js';
import { nodeBase, nodeBaseTag } from './node-base.js';
import { basePins } from './pins.js';
import { imageExists, imageSize } from './podman.js';
import { postgresBase, postgresBaseTag } from './postgres-base.js';
import { buildProjectImage, PROJECT_IMAGES } from './project-images.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

async function timed<T>(label: string, step: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await step();
  console.log(`images: ${label} ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return result;
}

/** The local bases, for test pods that need a plain Debian or Node image. */
export interface LocalBaseImages {
  readonly debian: string;
  readonly node: string;
  readonly postgres: string;
}

/**
 * The steps in the order their inputs allow, independent ones side by side (most of a cold
 * build waits on the mirror, the registry or the disk, not the 2 cores): the Node and PostgreSQL
 * bases together; pms-telemetry as soon as Node is there, so the build stage the three
 * Dockerfiles share (npm ci, tsc) runs once and the other two find it in podman's layer cache;
 * then pms-backup and pms-postgres together.
 */
export async function buildImages(root: string = ROOT): Promise<LocalBaseImages> {
  const started = performance.now();
  const pins = basePins(root);
  const debian = await timed('debian base', () => debianBase(root));
  const nodeReady = timed('node base', () => nodeBase(root, debian, pins.nodeVersion));
  const postgresReady = timed('postgres stand-in base', () => postgresBase(root, debian, pins.postgresVersion));
  const [telemetry, ...rest] = PROJECT_IMAGES.filter((i) => i.name.includes('telemetry')).concat(
    PROJECT_IMAGES.filter((i) => !i.name.includes('telemetry')),
  );
  if (!telemetry) throw new Error('no pms-telemetry image in PROJECT_IMAGES');
  const telemetryBuilt = nodeReady.then((node) =>
    timed(telemetry.name, () => buildProjectImage(root, telemetry, { substitutes: new Map([[pins.node, node]]) })),
  );
  // Both promises are awaited together so a failure of either is reported, not left unhandled.
  const [node, postgres] = await Promise.all([nodeReady, postgresReady, telemetryBuilt]);
  const substitutes = new Map([
    [pins.node, node],
    [pins.postgres, postgres],
  ]);
  await Promise.all(rest.map((image) => timed(image.name, () => buildProjectImage(root, image, { substitutes }))));
  for (const image of PROJECT_IMAGES) {
    console.log(`images: ${image.name} ${Math.round((await imageSize(image.name)) / 1e6)} MB`);
  }
  console.log(`images: all ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return { debian, node, postgres };
}

/**
 * The bases and images `npm run images` made, for a test that runs them: refuses (naming the
 * command) when any is missing or its recipe changed since it was built.
 */
export async function builtImages(root: string = ROOT): Promise<LocalBaseImages> {
  const pins = basePins(root);
  const debian = debianBaseTag();
  const bases = { debian, node: nodeBaseTag(debian, pins.nodeVersion), postgres: postgresBaseTag(debian, pins.postgresVersion) };
  for (const image of [...Object.values(bases), ...PROJECT_IMAGES.map((i) => i.name)]) {
    if (!(await imageExists(image))) throw new Error(`${image} is missing or out of date: run npm run images first`);
  }
  return bases;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildImages();
}
