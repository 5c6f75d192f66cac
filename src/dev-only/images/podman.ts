import { spawn } from 'node:child_process';
import { childEnv } from '../../process/child-env.js';
import { runTool } from '../../process/tool-process.js';

/**
 * podman as these dev-only scripts use it: the allowlisted child environment (no secrets of
 * ours reach it), output captured for queries, passed through for builds so a slow step shows.
 */
/**
 * podman's environment: the allowlist plus CONTAINERS_STORAGE_CONF, so a cold build can be
 * measured (or CI can build) in a storage root of its own without touching the machine's cache.
 */
export function podmanEnv(): NodeJS.ProcessEnv {
  return childEnv({ CONTAINERS_STORAGE_CONF: process.env.CONTAINERS_STORAGE_CONF });
}

export async function podman(args: readonly string[], input?: string): Promise<string> {
  const { stdout } = await runTool('podman', args, { env: podmanEnv(), ...(input === undefined ? {} : { input }) });
  return stdout;
}

/** A long podman step (build, import) whose output goes to our stdout and stderr as it comes. */
export async function podmanLoud(args: readonly string[]): Promise<void> {
  const child = spawn('podman', args, { env: podmanEnv(), stdio: ['ignore', 'inherit', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`podman ${args[0]} exited with status ${code}`))));
  });
}

export async function imageExists(name: string): Promise<boolean> {
  try {
    await podman(['image', 'exists', name]);
    return true;
  } catch {
    return false;
  }
}

/** The image's size in bytes as podman reports it (uncompressed, all layers). */
export async function imageSize(name: string): Promise<number> {
  return Number((await podman(['image', 'inspect', '--format', '{{.Size}}', name])).trim());
}
