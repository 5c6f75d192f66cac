import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  type S3Client,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { S3Settings } from '../../config/config.js';
import { PmsError } from '../../errors/catalogue.js';
import { checkKey, checkPrefix } from '../object-key.js';
import { checkMetadata } from '../object-metadata.js';
import { readAll } from '../read-all.js';
import type { ObjectInfo, PutOptions, PutResult, Storage } from '../storage.js';
import { DEFAULT_S3_TUNING, type S3Tuning, createS3Client, describeEndpoint } from './s3-client.js';
import { s3Error } from './s3-errors.js';

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
    this.#tuning = { ...DEFAULT_S3_TUNING, ...tuning };
    if (this.#tuning.partSize < 5 * 1024 * 1024) {
      throw new PmsError('PMS_ERR_CONFIG', 'the S3 part size must be at least 5 MiB (an S3 limit)');
    }
    this.#client = createS3Client(settings, this.#tuning);
    this.#endpoint = describeEndpoint(settings);
    this.location = `s3://${settings.bucket}${settings.prefix ? `/${settings.prefix}` : ''}`;
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
        // Fails early (before sending gigabytes) and is the only guard on servers that ignore
        // If-None-Match; where it is honoured, the header below closes the race.
        throw new PmsError('PMS_ERR_TARGET_EXISTS', `${key} already exists in ${this.location}; it is write-once and was left unchanged`, {
          details: { key, location: this.location },
        });
      }
    } catch (error) {
      body.destroy();
      if (isAbort(error)) throw this.#error(error, `store ${key}`, key);
      throw error;
    }

    let bytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length;
        callback(null, chunk);
      },
    });
    let bodyError: unknown;
    const onBodyError = (error: unknown): void => {
      bodyError ??= error;
    };
    body.once('error', onBodyError);
    const upload = new Upload({
      client: this.#client,
      partSize: this.#tuning.partSize,
      queueSize: this.#tuning.queueSize,
      leavePartsOnError: false,
      params: {
        Bucket: this.#settings.bucket,
        Key: objectKey,
        Body: counter,
        Metadata: { ...metadata },
        // Required by deploy/s3/bucket-policy.json (deny uploads without SSE-AES256); data is
        // already OpenPGP-encrypted, this is the seed's second layer at rest.
        ServerSideEncryption: 'AES256',
        ...(options.ifAbsent ? { IfNoneMatch: '*' } : {}),
      },
    });
    const onAbort = (): void => void upload.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const feeding = pipeline(body, counter, options.signal ? { signal: options.signal } : {});
    const uploading = upload.done().catch((error: unknown) => {
      // Upload stopped pulling: unblock the feeding side so it settles too.
      counter.destroy();
      body.destroy();
      throw error;
    });
    const [fed, uploaded] = await Promise.allSettled([feeding, uploading]);
    options.signal?.removeEventListener('abort', onAbort);
    body.off('error', onBodyError);
    if (fed.status === 'fulfilled' && uploaded.status === 'fulfilled') return { key, bytes };
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
    // Headers arrived: the server is alive. From here the consumer sets the pace, and it may
    // pause for minutes, so an idle-socket timeout would kill healthy restores. TCP keepalive
    // still detects a dead peer.
    source.socket?.setTimeout(0);
    const out = new PassThrough({ highWaterMark: 1024 * 1024 });
    source.on('error', (error: unknown) => out.destroy(this.#error(error, `read ${key}`, key)));
    out.on('close', () => {
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

  async delete(key: string): Promise<void> {
    const objectKey = this.#objectKey(key);
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#settings.bucket, Key: objectKey }));
    } catch (error) {
      const mapped = this.#error(error, `delete ${key}`, key);
      if (mapped.code !== 'PMS_ERR_NOT_FOUND') throw mapped;
    }
  }

  async probe(): Promise<void> {
    const probeKey = `${this.#settings.prefix ? `${this.#settings.prefix}/` : ''}.pms-probe-${randomUUID()}`;
    try {
      await this.#client.send(
        new PutObjectCommand({ Bucket: this.#settings.bucket, Key: probeKey, Body: 'probe', ServerSideEncryption: 'AES256' }),
      );
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#settings.bucket, Key: probeKey }));
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
