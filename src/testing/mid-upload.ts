import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Waits until a writer to a file:// repository is mid-upload: one of the storage driver's
 * temporary files (`.pms-tmp-*`) under `root` has grown past `bytes`. Returns false if the
 * writer exited first or nothing grew within `seconds` (the caller asserts on it).
 */
export async function waitUntilMidUpload(root: string, writer: ChildProcess, bytes = 64 * 1024, seconds = 60): Promise<boolean> {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline && writer.exitCode === null && writer.signalCode === null) {
    if (existsSync(root)) {
      const growing = readdirSync(root, { recursive: true, withFileTypes: true }).some(
        (e) => e.isFile() && e.name.startsWith('.pms-tmp-') && statSync(join(e.parentPath ?? e.path, e.name)).size > bytes,
      );
      if (growing) return true;
    }
    await sleep(10);
  }
  return false;
}
