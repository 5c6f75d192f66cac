import type { Readable } from 'node:stream';

export interface ObjectInfo {
  /** Path relative to the repository root, '/'-separated (e.g. backups/<id>/manifest.json). */
  readonly key: string;
  readonly bytes: number;
  readonly modifiedAt: Date;
  /** User metadata stored with the object (lower-case keys); empty when a listing does not carry it. */
  readonly metadata: Readonly<Record<string, string>>;
}

export interface PutOptions {
  /** Small string metadata kept with the object (S3 user metadata / a sidecar file). */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Fail with PMS_ERR_CONFLICT-style error if the key already exists (locks, write-once files). */
  readonly ifAbsent?: boolean;
  readonly signal?: AbortSignal;
}

export interface DeleteOptions {
  /**
   * Free the stored data too, not only the name (prune). Where the store keeps every version
   * under Object Lock (S3 with BACKUP_S3_OBJECT_LOCK_MODE), this deletes each version whose
   * retention has passed; an object still retained is left exactly as it is, readable, and
   * reported in the result, so a later prune can finish the job. Elsewhere it is a plain delete.
   */
  readonly purge?: boolean;
}

export interface DeleteResult {
  /** Set when (purge) the store refused to delete the object yet; it is unchanged. */
  readonly retained?: {
    /** End of its retention; undefined when only a legal hold keeps it. */
    readonly until: Date | undefined;
    readonly legalHold: boolean;
  };
}

export interface PutResult {
  readonly key: string;
  readonly bytes: number;
}

/**
 * One interface for every backend (pgBackRest's storage drivers). Nothing outside `storage/`
 * knows which backend is in use. Every write is atomic: an object is either absent or complete,
 * never partially visible, and a failed or aborted put leaves nothing under the key.
 * Errors are PmsError: PMS_ERR_NOT_FOUND, PMS_ERR_REPO_UNAVAILABLE, PMS_ERR_REPO_ACCESS,
 * PMS_ERR_TARGET_EXISTS (ifAbsent).
 */
export interface Storage {
  /** The repository URL without credentials, for messages and manifests. */
  readonly location: string;
  /** Streams `body` into `key` with backpressure; resolves once the object is durably stored. */
  put(key: string, body: Readable, options?: PutOptions): Promise<PutResult>;
  putBytes(key: string, body: Uint8Array | string, options?: PutOptions): Promise<PutResult>;
  /** A stream of the object's bytes; rejects with PMS_ERR_NOT_FOUND when absent. */
  get(key: string, options?: { signal?: AbortSignal }): Promise<Readable>;
  getBytes(key: string): Promise<Buffer>;
  /** Object info, or undefined when absent. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with `prefix`, in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /**
   * Deletes the object; deleting an absent key is not an error. Without `purge` the key reads
   * as absent afterwards even where the store must keep the data (a delete marker in a
   * versioned bucket; the data stays until its retention or the bucket lifecycle ends it).
   */
  delete(key: string, options?: DeleteOptions): Promise<DeleteResult>;
  /** Checks the repository answers and accepts writes (doctor, monitor). */
  probe(): Promise<void>;
  /**
   * Removes what killed writers left behind before `olderThan` (temporary files on a
   * filesystem, unfinished multipart uploads on S3); returns how many were removed. Never
   * touches complete objects. Use a cut-off well before any put that may still be running.
   */
  removeIncomplete(olderThan: Date): Promise<number>;
  /** Releases connections/sockets. */
  close(): Promise<void>;
}
