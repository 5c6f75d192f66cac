import { closeSync, fchownSync, openSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DecryptionKeys } from '../../../crypto/keys.js';
import { PmsError, isPmsError } from '../../../errors/catalogue.js';
import { type ReaderTrust, consumeVerified, openEncrypted, readEncryptedBytes } from '../../../pipeline/open-encrypted.js';
import { startTool } from '../../../process/tool-process.js';
import type { BaseManifest } from '../../../repository/manifest.js';
import type { Storage } from '../../../storage/storage.js';
import { inspectExtracted } from './inspect-extracted.js';

export interface UnpackOptions {
  readonly storage: Storage;
  readonly manifest: BaseManifest;
  readonly keys: DecryptionKeys;
  /** Whose signatures the base backup's objects must carry. */
  readonly trust: ReaderTrust;
  /** An existing, empty directory. */
  readonly dataDir: string;
  /** OS user that extracts (and so owns) the files when we are root. */
  readonly runAs?: string | undefined;
  readonly onProgress?: (fetchedBytes: number, totalBytes: number) => void;
  readonly signal?: AbortSignal;
}

/**
 * repository → OpenPGP → zstd -d → `tar -x` into the data directory, streamed (the three stages
 * overlap: OpenPGP in this process, zstd and tar as children joined by pipes); then the
 * server's backup_manifest (a second object since base backups are compressed by the server)
 * is written beside the files, where pg_basebackup would have put it, so pg_verifybackup can
 * check the copy. The caller must treat the directory as garbage unless this resolves: the
 * stored sha256 and the OpenPGP MDC can only be checked once every byte went through.
 */
export async function unpackBaseBackup(options: UnpackOptions): Promise<{ bytes: number }> {
  const object = options.manifest.objects[0];
  if (!object) throw new PmsError('PMS_ERR_MANIFEST', `manifest of ${options.manifest.id} lists no objects`);
  const serverManifest = options.manifest.objects[1];
  // Fetched and checked while the tar streams (it is independent of it), written only after
  // the extracted tree passed inspection.
  const serverManifestBytes = serverManifest
    ? readEncryptedBytes({
        storage: options.storage,
        key: serverManifest.key,
        keys: options.keys,
        trust: options.trust,
        stored: serverManifest,
        decompress: false,
        ...(options.signal ? { signal: options.signal } : {}),
      })
    : undefined;
  serverManifestBytes?.catch(() => undefined);
  try {
    // tar first: zstd then writes into tar's stdin itself, and the 1.9 GB of a large cluster's
    // plaintext never passes through this process (only the compressed object does). 1 MiB
    // records (-b 2048), reassembled from the pipe's short reads (-B), make tar write files in
    // 1 MiB calls instead of 10 KiB: a third less system time unpacking 1.5 GB here.
    const tar = startTool('tar', ['-x', '-b', '2048', '-B', '-f', '-', '-C', options.dataDir], {
      stdin: 'pipe',
      stdout: 'ignore',
      runAs: options.runAs,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    tar.done.catch(() => undefined);
    let opened: Awaited<ReturnType<typeof openEncrypted>>;
    try {
      opened = await openEncrypted({
        storage: options.storage,
        key: object.key,
        keys: options.keys,
        trust: options.trust,
        stored: object,
        decompress: true,
        decompressInto: tar.child.stdin!,
        ...(options.onProgress ? { onProgress: (n: number) => options.onProgress?.(n, object.bytes) } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      // Refused before zstd started (size, header, key): tar is given nothing and stopped.
      tar.child.stdin?.destroy();
      tar.child.kill('SIGTERM');
      throw error;
    }
    const [, facts] = await consumeVerified(opened, () => tar.done);
    // Before anything else is written here: a crafted tar may have planted links to follow.
    await inspectExtracted(options.dataDir, options.manifest.id);
    if (serverManifest && serverManifestBytes) {
      const bytes = await serverManifestBytes;
      // Created exclusively and chowned through its descriptor (never by path: the directory
      // belongs to the server's OS user), owned like the files tar just wrote.
      const fd = openSync(join(options.dataDir, 'backup_manifest'), 'wx', 0o600);
      try {
        writeFileSync(fd, bytes);
        const owner = statSync(join(options.dataDir, 'PG_VERSION'));
        if (process.getuid?.() === 0) fchownSync(fd, owner.uid, owner.gid);
      } finally {
        closeSync(fd);
      }
    }
    return { bytes: facts.storedBytes + (serverManifest?.bytes ?? 0) };
  } catch (error) {
    if (isPmsError(error)) throw error;
    throw new PmsError('PMS_ERR_INTERNAL', `unpacking base backup ${options.manifest.id} failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
