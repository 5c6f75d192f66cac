import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  type HeadObjectCommandOutput,
  PutObjectCommand,
  PutObjectRetentionCommand,
  type S3Client,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { S3Settings } from '../../config/config.js';
import { PmsError } from '../../errors/catalogue.js';
import { checkKey, checkPrefix } from '../object-key.js';
import { checkMetadata } from '../object-metadata.js';
import { readAll } from '../read-all.js';
import type { DeleteOptions, DeleteResult, ObjectInfo, PutOptions, PutResult, Storage } from '../storage.js';
import { type KeyVersion, listKeyVersions, raceOutcome } from './key-versions.js';
import { type Retention, lockParams, retentionOf } from './object-lock.js';
import { DEFAULT_S3_TUNING, type S3Tuning, createS3Client, describeEndpoint } from './s3-client.js';
import { s3Error } from './s3-errors.js';

/** What every write carries. The production bucket policy (deploy/s3/bucket-policy.json) refuses uploads without it. */
const SSE = { ServerSideEncryption: 'AES256' } as const;
/** CopyObject copies at most this much in one request. */
const MAX_COPY_BYTES = 5 * 1024 ** 3;

/** A version id that names a real version (unversioned buckets answer none, or "null"). */
function realVersionId(id: string | undefined): string | undefined {
  return id === undefined || id === '' || id === 'null' ? undefined : id;
}

function isAccessDenied(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return e?.name === 'AccessDenied' || e?.$metadata?.httpStatusCode === 403;
}

/**
 * Calls `onIdle` when `source` sent nothing for `ms` while `out` had room (so the wait was the
 * server's, not the reader's). Returns the function that stops watching.
 */
function watchBodyIdle(source: IncomingMessage, out: PassThrough, ms: number, onIdle: () => void): () => void {
  let progress = Date.now();
  const touch = (): void => {
    progress = Date.now();
  };
  source.on('data', touch);
  out.on('drain', touch);
  const timer = setInterval(
    () => {
      if (out.writableNeedDrain) return touch();
      if (Date.now() - progress >= ms) {
        clearInterval(timer);
        onIdle();
      }
    },
    Math.max(50, Math.min(1000, ms / 4)),
  );
  const stop = (): void => clearInterval(timer);
  source.once('end', stop);
  source.once('close', stop);
  return stop;
}

/** The part of a multipart upload's final request we guard (lib-storage passes the put's params through). */
interface CompleteInput {
  readonly Bucket?: string;
  readonly Key?: string;
  readonly IfNoneMatch?: string;
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && error.name === 'AbortError';
}

/**
 * A repository in an S3 bucket (AWS, MinIO, s3rver), under an optional key prefix taken from
 * the URL: s3://bucket/some/prefix stores `key` as `some/prefix/<key>`.
 *
 * Puts stream through lib-storage's Upload (multipart above one part), so memory is bounded by
 * the tuning, not the object size; a failed or aborted put aborts its multipart upload, and S3
 * only makes an object visible when the upload completes, so nothing partial appears.
 *
 * Write-once (`ifAbsent`) holds on stores that enforce If-None-Match and on those that ignore
 * it in versioned buckets (Ceph RGW, hence every Object Lock bucket there): see #claim. With
 * `objectLock` every version is written with its retention, and prune's purge deletes versions
 * only once S3 lets it.
 */
export class S3Storage implements Storage {
  readonly location: string;
  readonly #settings: S3Settings;
  readonly #tuning: S3Tuning;
  readonly #client: S3Client;
  readonly #endpoint: string;
  #bucketSeen = false;

  constructor(settings: S3Settings, tuning: Partial<S3Tuning> = {}) {
    this.#settings = settings;
    this.#tuning = { ...DEFAULT_S3_TUNING, ...settings.tuning, ...tuning };
    if (this.#tuning.partSize < 5 * 1024 * 1024) {
      throw new PmsError('PMS_ERR_CONFIG', 'the S3 part size must be at least 5 MiB (an S3 limit)');
    }
    this.#client = createS3Client(settings, this.#tuning);
    this.#endpoint = describeEndpoint(settings);
    this.location = `s3://${settings.bucket}${settings.prefix ? `/${settings.prefix}` : ''}`;
    this.#guardMultipartCompletion();
  }

  /**
   * Ceph RGW ignores If-None-Match on CompleteMultipartUpload, so a write-once multipart upload
   * could replace an object created while its parts were being sent. Just before completing,
   * look again: this narrows the window from the whole upload to one round trip (on an
   * unversioned bucket that round trip is the residual race; on a versioned one #claim settles
   * it afterwards). Where the header is honoured (AWS) it stays the atomic guard.
   */
  #guardMultipartCompletion(): void {
    this.#client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as CompleteInput;
        if (context.commandName === 'CompleteMultipartUploadCommand' && input.IfNoneMatch === '*' && input.Key !== undefined) {
          const key = input.Key;
          const exists = await this.#client.send(new HeadObjectCommand({ Bucket: input.Bucket, Key: key })).then(
            () => true,
            (error: unknown) => {
              if (this.#error(error, 'inspect', key).code === 'PMS_ERR_NOT_FOUND') return false;
              throw error;
            },
          );
          if (exists) throw this.#exists(key.slice(this.#base().length), 'it was created while this upload was being sent');
        }
        return next(args);
      },
      { step: 'initialize', name: 'pmsWriteOnceCompletion' },
    );
  }

  #base(): string {
    return this.#settings.prefix ? `${this.#settings.prefix}/` : '';
  }

  #exists(key: string, why?: string): PmsError {
    return new PmsError(
      'PMS_ERR_TARGET_EXISTS',
      `${key} already exists in ${this.location}${why ? ` (${why})` : ''}; it is write-once and was left unchanged`,
      { details: { key, location: this.location } },
    );
  }

  #objectKey(key: string): string {
    checkKey(key);
    return this.#settings.prefix ? `${this.#settings.prefix}/${key}` : key;
  }

  #error(error: unknown, action: string, key?: string): PmsError {
    return s3Error(error, { action, endpoint: this.#endpoint, bucket: this.#settings.bucket, ...(key === undefined ? {} : { key }) });
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<PutResult> {
    let objectKey: string;
    let metadata: Readonly<Record<string, string>>;
    try {
      objectKey = this.#objectKey(key);
      metadata = checkMetadata(options.metadata);
      if (options.signal?.aborted) throw new PmsError('PMS_ERR_ABORTED', `writing ${key} was cancelled; nothing was stored under it`);
      if (options.ifAbsent && (await this.head(key)) !== undefined) {
        // Fails early (before sending gigabytes); where If-None-Match is honoured the header
        // below closes the race, elsewhere #claim does.
        throw this.#exists(key);
      }
    } catch (error) {
      body.destroy();
      if (isAbort(error)) throw this.#error(error, `store ${key}`, key);
      throw error;
    }

    const lock = this.#settings.objectLock ? lockParams(this.#settings.objectLock) : undefined;
    let bytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length;
        callback(null, chunk);
      },
    });
    let bodyError: unknown;
    let uploadFailed = false;
    const onBodyError = (error: unknown): void => {
      // Only a failure of the body itself: once the upload failed, destroying the body makes it
      // report a bare "operation was aborted" that must not hide the upload's error.
      if (!uploadFailed) bodyError ??= error;
    };
    body.once('error', onBodyError);
    const upload = new Upload({
      client: this.#client,
      partSize: this.#tuning.partSize,
      queueSize: this.#tuning.queueSize,
      // We abort a failed multipart upload ourselves (#abandon): lib-storage would throw the
      // abort's own failure in place of the part's, e.g. "not supported" or "access denied"
      // for what was a connection reset.
      leavePartsOnError: true,
      params: {
        Bucket: this.#settings.bucket,
        Key: objectKey,
        Body: counter,
        Metadata: { ...metadata },
        // Required by deploy/s3/bucket-policy.json (deny uploads without SSE-AES256); data is
        // already OpenPGP-encrypted, this is the seed's second layer at rest.
        ...SSE,
        ...(options.ifAbsent ? { IfNoneMatch: '*' } : {}),
        ...(lock === undefined
          ? {}
          : // AWS refuses an upload with Object Lock parameters unless it carries a checksum
            // (Content-MD5 or x-amz-checksum-*); lib-storage sends whole parts, so the CRC goes
            // in a header, not in the aws-chunked trailers s3rver cannot parse.
            { ...lock, ChecksumAlgorithm: 'CRC32' as const }),
      },
    });
    const onAbort = (): void => void upload.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const feeding = pipeline(body, counter, options.signal ? { signal: options.signal } : {});
    const uploading = upload.done().catch((error: unknown) => {
      // Upload stopped pulling: unblock the feeding side so it settles too.
      uploadFailed = true;
      counter.destroy();
      body.destroy();
      throw error;
    });
    const [fed, uploaded] = await Promise.allSettled([feeding, uploading]);
    options.signal?.removeEventListener('abort', onAbort);
    body.off('error', onBodyError);
    if (uploaded.status === 'rejected' || fed.status === 'rejected') await this.#abandon(objectKey, upload.uploadId);
    if (fed.status === 'fulfilled' && uploaded.status === 'fulfilled') {
      const versionId = realVersionId(uploaded.value.VersionId);
      try {
        if (lock !== undefined && versionId !== undefined && bytes > this.#tuning.partSize) {
          await this.#ensureRetention(objectKey, versionId, lock.ObjectLockRetainUntilDate);
        }
        if (options.ifAbsent && versionId !== undefined) await this.#claim(key, objectKey, versionId);
      } catch (error) {
        throw this.#error(error, `store ${key}`, key);
      }
      return { key, bytes };
    }
    if (options.signal?.aborted) {
      throw new PmsError('PMS_ERR_ABORTED', `writing ${key} was cancelled; nothing was stored under it`, {
        cause: uploaded.status === 'rejected' ? uploaded.reason : undefined,
      });
    }
    // The body's own failure (e.g. pg_dump died) explains more than the upload's reaction to it.
    if (bodyError !== undefined) throw bodyError;
    if (uploaded.status === 'rejected') throw this.#error(uploaded.reason, `store ${key}`, key);
    throw (fed as PromiseRejectedResult).reason;
  }

  /**
   * Aborts a failed multipart upload so its parts stop costing storage. Best effort: when S3 is
   * unreachable the abort fails too, and the parts stay invisible until removeIncomplete or the
   * bucket's AbortIncompleteMultipartUpload rule (docs/storage.md); the put's own error is the
   * one reported.
   */
  async #abandon(objectKey: string, uploadId: string | undefined): Promise<void> {
    if (uploadId === undefined) return;
    await this.#client
      .send(new AbortMultipartUploadCommand({ Bucket: this.#settings.bucket, Key: objectKey, UploadId: uploadId }))
      .catch(() => undefined);
  }

  /**
   * Ceph RGW (16) ignores Object Lock parameters on CreateMultipartUpload, so a multipart
   * version would be born unprotected; set its retention explicitly when it lacks it. Setting
   * the same date again is harmless where the parameters were honoured (AWS). A bucket default
   * retention (docs/s3-bucket.md) also covers the moment between completion and this call.
   */
  async #ensureRetention(objectKey: string, versionId: string, until: Date): Promise<void> {
    const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.#settings.bucket, Key: objectKey, VersionId: versionId }));
    if (head.ObjectLockRetainUntilDate !== undefined && head.ObjectLockRetainUntilDate >= until) return;
    const mode = this.#settings.objectLock?.mode ?? 'COMPLIANCE';
    await this.#client.send(
      new PutObjectRetentionCommand({
        Bucket: this.#settings.bucket,
        Key: objectKey,
        VersionId: versionId,
        Retention: { Mode: mode, RetainUntilDate: until },
        ChecksumAlgorithm: 'CRC32',
      }),
    );
  }

  /**
   * Settles who owns a write-once key after our version `versionId` was stored in a versioned
   * bucket. A store that ignores If-None-Match there (Ceph RGW) lets two writers that both
   * passed the HEAD both store a version; the earliest one in the key's current life wins. The
   * loser makes the winner's content current again (a server-side copy of that version, so every
   * reader sees what the winner stored; the loser may not delete its own version: it has no
   * delete permission and Object Lock may hold it) and fails with PMS_ERR_TARGET_EXISTS, as a
   * loser does where the header is enforced. Residual race, documented in docs/storage.md:
   * between the loser's put and its copy a reader can see the loser's bytes.
   */
  async #claim(key: string, objectKey: string, versionId: string): Promise<void> {
    const outcome = raceOutcome(await listKeyVersions(this.#client, this.#settings.bucket, objectKey), versionId);
    if (outcome.won) return;
    await this.#republish(objectKey, outcome.winner);
    throw this.#exists(key, 'another writer stored it at the same moment and was first; its version was kept');
  }

  async #republish(objectKey: string, winner: KeyVersion): Promise<void> {
    if (winner.bytes > MAX_COPY_BYTES) return; // a single copy cannot; readers see the later version until prune
    const lock = this.#settings.objectLock ? lockParams(this.#settings.objectLock) : {};
    const source = `${this.#settings.bucket}/${objectKey.split('/').map(encodeURIComponent).join('/')}`;
    await this.#client.send(
      new CopyObjectCommand({
        Bucket: this.#settings.bucket,
        Key: objectKey,
        CopySource: `${source}?versionId=${encodeURIComponent(winner.versionId)}`,
        MetadataDirective: 'COPY',
        ...SSE,
        ...lock,
      }),
    );
  }

  async putBytes(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    return this.put(key, Readable.from([Buffer.from(body)]), options);
  }

  async get(key: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    const objectKey = this.#objectKey(key);
    let response: GetObjectCommandOutput;
    try {
      response = await this.#client.send(
        new GetObjectCommand({ Bucket: this.#settings.bucket, Key: objectKey }),
        options.signal ? { abortSignal: options.signal } : {},
      );
    } catch (error) {
      throw await this.#notFoundOrError(error, `read ${key}`, key);
    }
    const source = response.Body as IncomingMessage | undefined;
    if (source === undefined) throw this.#error(new Error('empty body'), `read ${key}`, key);
    // Headers arrived: from here the consumer sets the pace, and it may pause for minutes, so
    // the socket's idle timeout would kill healthy restores. A server that stops sending while
    // we wait (a stalled body: TCP keepalive sees a live peer) must still fail, so the idle
    // watch below counts only time the reader is waiting for bytes.
    source.socket?.setTimeout(0);
    const out = new PassThrough({ highWaterMark: 1024 * 1024 });
    const stopWatch = watchBodyIdle(source, out, this.#tuning.socketTimeoutMs, () => {
      const stalled = Object.assign(new Error(`no byte of the body arrived for ${this.#tuning.socketTimeoutMs} ms`), {
        name: 'TimeoutError',
        code: 'ETIMEDOUT',
      });
      source.destroy(stalled);
    });
    source.on('error', (error: unknown) => out.destroy(this.#error(error, `read ${key}`, key)));
    out.on('close', () => {
      stopWatch();
      if (!source.readableEnded) source.destroy();
    });
    source.pipe(out);
    return out;
  }

  async getBytes(key: string): Promise<Buffer> {
    return readAll(await this.get(key));
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const objectKey = this.#objectKey(key);
    try {
      const response = await this.#client.send(new HeadObjectCommand({ Bucket: this.#settings.bucket, Key: objectKey }));
      this.#bucketSeen = true;
      return {
        key,
        bytes: response.ContentLength ?? 0,
        modifiedAt: response.LastModified ?? new Date(0),
        metadata: { ...(response.Metadata ?? {}) },
      };
    } catch (error) {
      const mapped = await this.#notFoundOrError(error, `inspect ${key}`, key);
      if (mapped.code === 'PMS_ERR_NOT_FOUND') return undefined;
      throw mapped;
    }
  }

  /**
   * A 404 without a body (HEAD) looks the same for a missing key and a missing bucket; telling
   * them apart once matters, because "absent" must not be the answer when the bucket is gone.
   */
  async #notFoundOrError(error: unknown, action: string, key: string): Promise<PmsError> {
    const mapped = this.#error(error, action, key);
    if (mapped.code !== 'PMS_ERR_NOT_FOUND' || this.#bucketSeen) return mapped;
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.#settings.bucket }));
      this.#bucketSeen = true;
      return mapped;
    } catch (bucketError) {
      const bucketMapped = this.#error(bucketError, action, key);
      if (bucketMapped.code === 'PMS_ERR_NOT_FOUND') {
        return new PmsError(
          'PMS_ERR_REPO_UNAVAILABLE',
          `cannot ${action}: bucket ${this.#settings.bucket} does not exist at ${this.#endpoint}; create it or fix BACKUP_REPOSITORY`,
          {
            cause: bucketError,
            details: { endpoint: this.#endpoint, bucket: this.#settings.bucket },
          },
        );
      }
      return bucketMapped;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    const base = this.#settings.prefix ? `${this.#settings.prefix}/` : '';
    const pages = paginateListObjectsV2({ client: this.#client, pageSize: 1000 }, { Bucket: this.#settings.bucket, Prefix: base + prefix });
    try {
      for await (const page of pages) {
        this.#bucketSeen = true;
        for (const item of page.Contents ?? []) {
          if (item.Key === undefined || !item.Key.startsWith(base)) continue;
          yield { key: item.Key.slice(base.length), bytes: item.Size ?? 0, modifiedAt: item.LastModified ?? new Date(0), metadata: {} };
        }
      }
    } catch (error) {
      throw this.#error(error, `list ${JSON.stringify(prefix)}`);
    }
  }

  /**
   * Without Object Lock, a plain DeleteObject: in a versioned bucket that is a delete marker and
   * the data stays a noncurrent version for the lifecycle's recovery window (docs/s3-bucket.md).
   * With Object Lock, retention is that window, so purge deletes the versions themselves.
   */
  async delete(key: string, options: DeleteOptions = {}): Promise<DeleteResult> {
    const objectKey = this.#objectKey(key);
    try {
      if (options.purge && this.#settings.objectLock !== undefined) return await this.#purge(objectKey);
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#settings.bucket, Key: objectKey }));
      return {};
    } catch (error) {
      const mapped = this.#error(error, `delete ${key}`, key);
      if (mapped.code !== 'PMS_ERR_NOT_FOUND') throw mapped;
      return {};
    }
  }

  /**
   * Deletes the key's versions oldest first and stops at the first one Object Lock still holds,
   * so what the key reads as never changes until the object is gone entirely; its delete
   * markers go last. A refusal is only taken for retention when the version says so (RGW and
   * AWS both answer a locked version with a bare 403 AccessDenied, like a policy refusal).
   */
  async #purge(objectKey: string): Promise<DeleteResult> {
    const bucket = this.#settings.bucket;
    const history = await listKeyVersions(this.#client, bucket, objectKey);
    for (const version of [...history.versions].reverse()) {
      try {
        await this.#client.send(new DeleteObjectCommand({ Bucket: bucket, Key: objectKey, VersionId: version.versionId }));
      } catch (error) {
        if (!isAccessDenied(error)) throw error;
        const retained = await this.#retention(objectKey, version.versionId);
        if (retained === undefined) throw error;
        return { retained };
      }
    }
    for (const marker of history.markers) {
      await this.#client.send(new DeleteObjectCommand({ Bucket: bucket, Key: objectKey, VersionId: marker.versionId }));
    }
    return {};
  }

  async #retention(objectKey: string, versionId: string): Promise<Retention | undefined> {
    let head: HeadObjectCommandOutput;
    try {
      head = await this.#client.send(new HeadObjectCommand({ Bucket: this.#settings.bucket, Key: objectKey, VersionId: versionId }));
    } catch {
      return undefined;
    }
    return retentionOf(head);
  }

  async probe(): Promise<void> {
    const probeKey = `${this.#settings.prefix ? `${this.#settings.prefix}/` : ''}.pms-probe-${randomUUID()}`;
    const bucket = this.#settings.bucket;
    try {
      // No retention: the probe holds no data. In a versioned bucket its own version is deleted,
      // so hourly probes leave nothing behind. Where that is refused (no s3:DeleteObjectVersion,
      // or a bucket default retention holds it) a delete marker at least hides it, as before.
      const put = await this.#client.send(new PutObjectCommand({ Bucket: bucket, Key: probeKey, Body: 'probe', ...SSE }));
      const versionId = realVersionId(put.VersionId);
      const removed =
        versionId !== undefined &&
        (await this.#client.send(new DeleteObjectCommand({ Bucket: bucket, Key: probeKey, VersionId: versionId })).then(
          () => true,
          (error: unknown) => {
            if (isAccessDenied(error)) return false;
            throw error;
          },
        ));
      if (!removed) await this.#client.send(new DeleteObjectCommand({ Bucket: bucket, Key: probeKey }));
      this.#bucketSeen = true;
    } catch (error) {
      throw this.#error(error, 'write and delete a probe object');
    }
  }

  async removeIncomplete(olderThan: Date): Promise<number> {
    const base = this.#settings.prefix ? `${this.#settings.prefix}/` : '';
    let removed = 0;
    try {
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      do {
        const page = await this.#client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.#settings.bucket,
            Prefix: base,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        );
        for (const upload of page.Uploads ?? []) {
          if (upload.Key === undefined || upload.UploadId === undefined) continue;
          if (upload.Initiated === undefined || upload.Initiated >= olderThan) continue;
          await this.#client.send(
            new AbortMultipartUploadCommand({ Bucket: this.#settings.bucket, Key: upload.Key, UploadId: upload.UploadId }),
          );
          removed += 1;
        }
        [keyMarker, uploadIdMarker] = page.IsTruncated ? [page.NextKeyMarker, page.NextUploadIdMarker] : [undefined, undefined];
      } while (keyMarker !== undefined);
    } catch (error) {
      throw this.#error(error, 'remove unfinished multipart uploads');
    }
    return removed;
  }

  async close(): Promise<void> {
    this.#client.destroy();
  }
}
