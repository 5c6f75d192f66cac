import { closeSync, fchownSync, openSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import type { BaseManifest, StoredObject } from '../../../repository/manifest.js';
import { startDecompressor } from '../../../compression/zstd.js';
import type { DecryptionKeys } from '../../../crypto/keys.js';
import { classifyCipherError, decryptStream } from '../../../crypto/stream-cipher.js';
import { PmsError, isPmsError } from '../../../errors/catalogue.js';
import { startTool } from '../../../process/tool-process.js';
import type { Storage } from '../../../storage/storage.js';
import { ByteMeter } from '../../../streams/byte-meter.js';
import { linkAbort } from '../../../process/linked-abort.js';

export interface UnpackOptions {
  readonly storage: Storage;
  readonly manifest: BaseManifest;
  readonly keys: DecryptionKeys;
  /** An existing, empty directory. */
  readonly dataDir: string;
  /** OS user that extracts (and so owns) the files when we are root. */
  readonly runAs?: string | undefined;
  readonly onProgress?: (fetchedBytes: number, totalBytes: number) => void;
  readonly signal?: AbortSignal;
}

/**
 * repository → OpenPGP → zstd -d → `tar -x` into the data directory, streamed; then the
 * server's backup_manifest (a second object since base backups are compressed by the server)
 * is written beside the files, where pg_basebackup would have put it, so pg_verifybackup can
 * check the copy. The caller must treat the directory as garbage unless this resolves: the
 * stored sha256 and the OpenPGP MDC can only be checked once every byte went through.
 */
export async function unpackBaseBackup(options: UnpackOptions): Promise<{ bytes: number }> {
  const object = options.manifest.objects[0];
  if (!object) throw new PmsError('PMS_ERR_MANIFEST', `manifest of ${options.manifest.id} lists no objects`);
  const link = linkAbort(options.signal);
  const abort = link.controller;
  try {
    const fetched = new ByteMeter({ sha256: true, onProgress: (n) => options.onProgress?.(n, object.bytes) });
    const source = await options.storage.get(object.key, { signal: abort.signal });
    source.on('error', (error) => fetched.destroy(error));
    const plain = await decryptStream(source.pipe(fetched), options.keys);
    const zstd = startDecompressor({ signal: abort.signal });
    const tar = startTool('tar', ['-x', '-f', '-', '-C', options.dataDir], {
      stdin: 'pipe',
      stdout: 'ignore',
      runAs: options.runAs,
      signal: abort.signal,
    });
    const stages = [
      pipeline(plain, zstd.child.stdin!).catch((error: unknown) => {
        throw classifyCipherError(error) ?? error;
      }),
      zstd.done.catch((error: unknown) => {
        // zstd dies of a broken pipe when tar stops first (a full disk): that is tar's story.
        if (/Broken pipe|Write error/i.test(zstd.stderr())) throw error;
        throw new PmsError('PMS_ERR_INTEGRITY', `decompression failed (${(error as Error).message}): the base backup is corrupt`, {
          cause: error,
        });
      }),
      pipeline(zstd.child.stdout!, tar.child.stdin!),
      tar.done,
    ];
    const settled = await Promise.allSettled(
      stages.map((p) =>
        p.catch((error: unknown) => {
          abort.abort(error);
          throw error;
        }),
      ),
    );
    const errors = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => s.reason as unknown);
    if (errors.length > 0) {
      const tarFailure =
        settled[3]?.status === 'rejected' && !isPmsError(settled[3].reason, 'PMS_ERR_ABORTED') ? settled[3].reason : undefined;
      throw (
        errors.find((e) => isPmsError(e, 'PMS_ERR_INTEGRITY')) ??
        errors.find((e) => isPmsError(e, 'PMS_ERR_KEY')) ??
        tarFailure ??
        errors.find((e) => isPmsError(e)) ??
        errors[0]
      );
    }
    if (fetched.bytes !== object.bytes || fetched.sha256 !== object.sha256) {
      throw new PmsError(
        'PMS_ERR_INTEGRITY',
        `${object.key} does not match its manifest (sha256 or size differs): the stored base backup was modified; refusing it`,
        {
          details: { expectedSha256: object.sha256, actualSha256: fetched.sha256 },
        },
      );
    }
    const serverManifest = options.manifest.objects[1];
    if (serverManifest) {
      const bytes = await fetchVerified(options.storage, serverManifest, options.keys, abort.signal);
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
    return { bytes: fetched.bytes + (serverManifest?.bytes ?? 0) };
  } catch (error) {
    abort.abort(error);
    if (isPmsError(error)) throw error;
    throw (
      classifyCipherError(error) ??
      new PmsError('PMS_ERR_INTERNAL', `unpacking base backup ${options.manifest.id} failed: ${(error as Error).message}`, { cause: error })
    );
  } finally {
    link.unlink();
  }
}

/**
 * A small object: fetched whole, checked against the manifest's size and sha256 first (so a
 * modified object is named as such), then decrypted into memory.
 */
async function fetchVerified(storage: Storage, object: StoredObject, keys: DecryptionKeys, signal: AbortSignal): Promise<Buffer> {
  const fetched = new ByteMeter({ sha256: true });
  const source = await storage.get(object.key, { signal });
  source.on('error', (error) => fetched.destroy(error));
  const ciphertext = await buffer(source.pipe(fetched));
  if (fetched.bytes !== object.bytes || fetched.sha256 !== object.sha256) {
    throw new PmsError(
      'PMS_ERR_INTEGRITY',
      `${object.key} does not match its manifest (sha256 or size differs): the stored base backup was modified; refusing it`,
      {
        details: { expectedSha256: object.sha256, actualSha256: fetched.sha256 },
      },
    );
  }
  try {
    return await buffer(await decryptStream(Readable.from([ciphertext]), keys));
  } catch (error) {
    throw classifyCipherError(error) ?? error;
  }
}
