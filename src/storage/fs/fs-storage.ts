import { randomUUID } from 'node:crypto';
import { type FileHandle, link, mkdir, open, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { PmsError, isPmsError } from '../../errors/catalogue.js';
import { checkKey, checkPrefix } from '../object-key.js';
import { checkMetadata } from '../object-metadata.js';
import { readAll } from '../read-all.js';
import type { DeleteResult, ObjectInfo, PutOptions, PutResult, Storage } from '../storage.js';
import { makeDirectoryDurably, syncDirectory, syncedFileSink } from './durable-fs.js';
import { fsError } from './fs-errors.js';
import { readSidecar, removeSidecar, sidecarPath, writeSidecar } from './metadata-sidecar.js';
import { walkKeys, walkTemporaryFiles } from './walk-keys.js';

const FILE_MODE = 0o600; // backups of patient data: owner only, whatever the umask says.
/** A write-once lock older than this was left by a killed writer (see #withKeyLock). */
const STALE_LOCK_MS = 30_000;

function abortedError(cause: unknown, key: string): PmsError {
  return new PmsError('PMS_ERR_ABORTED', `writing ${key} was cancelled; nothing was stored under it`, { cause });
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && error.name === 'AbortError';
}

/**
 * A repository on a local or mounted filesystem (file:///var/backups/pms). Object `key` is the
 * file `<root>/<key>`, byte for byte. Writes go to a temporary file in the same directory,
 * are fsynced, then renamed (or hard-linked for ifAbsent) into place and the directory is
 * fsynced, so a reader sees the old object, the new one, or none: never a partial one.
 * The root itself must already exist: creating it would hide an unmounted volume by writing
 * backups onto the container's own disk.
 */
export class FsStorage implements Storage {
  readonly location: string;
  readonly #root: string;

  constructor(root: string) {
    this.#root = root.replace(/\/+$/, '');
    this.location = pathToFileURL(this.#root).href;
  }

  #path(key: string): string {
    return join(this.#root, checkKey(key));
  }

  async #requireRoot(): Promise<void> {
    try {
      const info = await stat(this.#root);
      if (info.isDirectory()) return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw fsError(error, 'open the repository', this.#root);
    }
    throw new PmsError(
      'PMS_ERR_REPO_UNAVAILABLE',
      `the file repository ${this.location} does not exist or is not a directory; create it or check that its volume is mounted`,
      { details: { location: this.location } },
    );
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<PutResult> {
    let path: string;
    let metadata: Readonly<Record<string, string>>;
    let dir: string;
    try {
      path = this.#path(key);
      dir = dirname(path);
      metadata = checkMetadata(options.metadata);
      if (options.signal?.aborted) throw abortedError(options.signal.reason, key);
      await this.#requireRoot();
      await makeDirectoryDurably(dir).catch((error: unknown) => {
        throw fsError(error, `create the directory for ${key}`, dirname(join(this.#root, key)));
      });
    } catch (error) {
      body.destroy(); // release the producer (e.g. a child process) that nobody will read
      throw error;
    }
    const temp = join(dir, `.pms-tmp-${randomUUID()}`);
    let handle: FileHandle | undefined;
    try {
      handle = await open(temp, 'wx', FILE_MODE);
      const sink = syncedFileSink(handle);
      // pipeline() hands each side's error to the other, so remember which side failed first:
      // the body (pg_dump died: the caller knows it best) or the sink (ENOSPC: ours to explain).
      let bodyError: unknown;
      let firstFailure: 'body' | 'sink' | undefined;
      body.once('error', (error) => {
        bodyError ??= error;
        firstFailure ??= 'body';
      });
      sink.once('error', () => {
        firstFailure ??= 'sink';
      });
      try {
        await pipeline(body, sink, options.signal ? { signal: options.signal } : {});
      } catch (error) {
        if (isAbort(error) || options.signal?.aborted) throw abortedError(error, key);
        if (firstFailure === 'body' && bodyError !== undefined) throw bodyError;
        throw fsError(error, `write ${key}`, temp);
      }
      const info = await handle.stat({ bigint: true });
      await handle.close();
      handle = undefined;
      if (options.ifAbsent) {
        // The sidecar goes first, naming the new file's inode, so that a writer killed between
        // the two steps leaves either nothing or an object with its metadata (WAL's seal and
        // sha256), never an object without: that one could never be re-pushed or trusted. It
        // is written only while nothing is at the key, so an existing object keeps its own.
        // Writers racing for one key (archive_mode = always: every member pushes the same
        // segment) take turns through a per-key lock, or the loser's sidecar could land on the
        // winner's object and leave it without metadata for good. S3, where metadata is part of
        // the PUT, needs none of this.
        if (Object.keys(metadata).length > 0) {
          await this.#withKeyLock(key, async () => {
            if (await exists(path)) await this.#commitIfAbsent(temp, path, key);
            await writeSidecar(this.#root, key, info.ino, metadata);
            await this.#commitIfAbsent(temp, path, key);
          });
        } else {
          await this.#commitIfAbsent(temp, path, key);
        }
      } else {
        if (Object.keys(metadata).length > 0) await writeSidecar(this.#root, key, info.ino, metadata);
        await rename(temp, path);
        await syncDirectory(dir);
        if (Object.keys(metadata).length === 0) await removeSidecar(this.#root, key);
      }
      return { key, bytes: Number(info.size) };
    } catch (error) {
      body.destroy();
      await handle?.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      if (isPmsError(error) || !(error as NodeJS.ErrnoException | undefined)?.code) throw error;
      throw fsError(error, `store ${key}`, path);
    }
  }

  /**
   * Runs `critical` holding `<sidecar>.pms-lock` (mkdir is atomic). A lock older than
   * STALE_LOCK_MS was left by a writer killed inside it (the section is a sidecar write and a
   * link, milliseconds) and is taken over.
   */
  async #withKeyLock(key: string, critical: () => Promise<void>): Promise<void> {
    const lock = `${sidecarPath(this.#root, key)}.pms-lock`;
    await makeDirectoryDurably(dirname(lock));
    for (;;) {
      try {
        await mkdir(lock);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const since = await stat(lock).then(
          (s) => Date.now() - s.mtimeMs,
          () => 0,
        );
        if (since > STALE_LOCK_MS) await rmdir(lock).catch(() => undefined);
        else await sleep(5 + Math.random() * 20);
      }
    }
    try {
      await critical();
    } finally {
      await rmdir(lock).catch(() => undefined);
    }
  }

  async #commitIfAbsent(temp: string, path: string, key: string): Promise<void> {
    try {
      // link(2) fails with EEXIST instead of replacing: the check and the write are one step.
      await link(temp, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new PmsError('PMS_ERR_TARGET_EXISTS', `${key} already exists in ${this.location}; it is write-once and was left unchanged`, {
          cause: error,
          details: { key, location: this.location },
        });
      }
      throw error;
    }
    await unlink(temp);
    await syncDirectory(dirname(path));
  }

  async putBytes(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    return this.put(key, Readable.from([typeof body === 'string' ? Buffer.from(body) : Buffer.from(body)]), options);
  }

  async get(key: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    const path = this.#path(key);
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOTDIR') throw this.#notFound(key);
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        await this.#requireRoot();
        throw this.#notFound(key);
      }
      throw fsError(error, `read ${key}`, path);
    }
    const info = await handle.stat().catch(async (error: unknown) => {
      await handle.close();
      throw fsError(error, `read ${key}`, path);
    });
    if (!info.isFile()) {
      await handle.close();
      throw this.#notFound(key);
    }
    // The open handle pins this version of the object even if it is replaced meanwhile.
    // 1 MiB reads: every consumer decrypts and decompresses, and per-chunk costs (OpenPGP's web
    // stream hops, pipe writes to zstd) dominate at the default 64 KiB.
    return handle.createReadStream({ highWaterMark: 1 << 20, ...(options.signal ? { signal: options.signal } : {}) });
  }

  async getBytes(key: string): Promise<Buffer> {
    return readAll(await this.get(key));
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const path = this.#path(key);
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(path, { bigint: true });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        await this.#requireRoot();
        return undefined;
      }
      throw fsError(error, `inspect ${key}`, path);
    }
    if (!info.isFile()) return undefined;
    const metadata = await readSidecar(this.#root, key, info.ino).catch((error: unknown) => {
      throw fsError(error, `read the metadata of ${key}`, sidecarPath(this.#root, key));
    });
    return { key, bytes: Number(info.size), modifiedAt: new Date(Number(info.mtimeMs)), metadata };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    await this.#requireRoot();
    try {
      for await (const file of walkKeys(this.#root, prefix)) {
        let info: Awaited<ReturnType<typeof stat>>;
        try {
          info = await stat(file.path, { bigint: true });
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // deleted while listing
          throw error;
        }
        const metadata = await readSidecar(this.#root, file.key, info.ino);
        yield { key: file.key, bytes: Number(info.size), modifiedAt: new Date(Number(info.mtimeMs)), metadata };
      }
    } catch (error) {
      throw fsError(error, `list ${JSON.stringify(prefix)}`, this.#root);
    }
  }

  /** A file has no versions and no retention: purge is the same delete. */
  async delete(key: string): Promise<DeleteResult> {
    const path = this.#path(key);
    try {
      await unlink(path);
      await syncDirectory(dirname(path));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        await this.#requireRoot();
      } else if (code === 'EISDIR' || code === 'EPERM') {
        // unlink(2) on a directory: Linux says EISDIR, POSIX allows EPERM. Not an object: nothing to do.
        const info = await stat(path).catch(() => undefined);
        if (!info?.isDirectory()) throw fsError(error, `delete ${key}`, path);
      } else {
        throw fsError(error, `delete ${key}`, path);
      }
    }
    await removeSidecar(this.#root, key).catch((error: unknown) => {
      throw fsError(error, `delete the metadata of ${key}`, sidecarPath(this.#root, key));
    });
    return {};
  }

  async probe(): Promise<void> {
    await this.#requireRoot();
    const path = join(this.#root, `.pms-probe-${randomUUID()}`);
    try {
      const handle = await open(path, 'wx', FILE_MODE);
      try {
        await handle.writeFile('probe');
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (error) {
      await unlink(path).catch(() => undefined);
      throw fsError(error, 'write a probe file', this.#root);
    }
    await unlink(path).catch((error: unknown) => {
      throw fsError(error, 'delete the probe file', path);
    });
  }

  async removeIncomplete(olderThan: Date): Promise<number> {
    await this.#requireRoot();
    let removed = 0;
    try {
      for await (const path of walkTemporaryFiles(this.#root)) {
        const info = await stat(path).catch(() => undefined);
        if (info === undefined || info.mtime >= olderThan) continue;
        await unlink(path).catch((error: unknown) => {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        });
        removed += 1;
      }
    } catch (error) {
      throw fsError(error, 'remove temporary files', this.#root);
    }
    return removed;
  }

  async close(): Promise<void> {
    // Nothing pooled: every operation opens and closes its own descriptors.
  }

  #notFound(key: string): PmsError {
    return new PmsError('PMS_ERR_NOT_FOUND', `${key} does not exist in ${this.location}`, { details: { key, location: this.location } });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
