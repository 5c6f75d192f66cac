import { randomUUID } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { makeDirectoryDurably, syncDirectory } from './durable-fs.js';

/**
 * Object metadata lives in `<root>/.pms-meta/<key>.json`, outside the object's own path so
 * `<root>/<key>` holds exactly the object's bytes (users and manifests look for them there).
 *
 * A sidecar and its object cannot be renamed together atomically, so each sidecar records the
 * inode of the data file it describes and is only believed while that inode is the one under
 * the key. A crash or a concurrent writer can therefore make metadata go missing (read as
 * `{}`), but never make one object's metadata appear on another object's bytes.
 */
export const SIDECAR_DIR = '.pms-meta';

interface SidecarFile {
  readonly v: 1;
  readonly inode: string;
  readonly metadata: Record<string, string>;
}

export function sidecarPath(root: string, key: string): string {
  return join(root, SIDECAR_DIR, `${key}.json`);
}

export async function writeSidecar(root: string, key: string, inode: bigint, metadata: Readonly<Record<string, string>>): Promise<void> {
  const path = sidecarPath(root, key);
  const dir = dirname(path);
  await makeDirectoryDurably(dir);
  const temp = join(dir, `.pms-tmp-${randomUUID()}`);
  const body: SidecarFile = { v: 1, inode: inode.toString(), metadata: { ...metadata } };
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(JSON.stringify(body));
    await handle.sync();
  } catch (error) {
    await handle.close();
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await handle.close();
  try {
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dir);
}

/** The metadata recorded for the data file with this inode, or `{}`. */
export async function readSidecar(root: string, key: string, inode: bigint): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(sidecarPath(root, key), 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return {};
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as Partial<SidecarFile>;
    if (parsed.v !== 1 || parsed.inode !== inode.toString() || typeof parsed.metadata !== 'object' || parsed.metadata === null) return {};
    return { ...parsed.metadata };
  } catch {
    // A torn sidecar cannot happen (it is renamed into place), but a hand-edited one can: ignore it.
    return {};
  }
}

export async function removeSidecar(root: string, key: string): Promise<void> {
  try {
    await unlink(sidecarPath(root, key));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
  }
}
