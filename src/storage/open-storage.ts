import type { RepositoryConfig } from '../config/config.js';
import { FsStorage } from './fs/fs-storage.js';
import { S3Storage } from './s3/s3-storage.js';
import type { Storage } from './storage.js';

/**
 * The only place that knows which backends exist: everything else receives a `Storage`.
 * Opening is cheap and does no I/O; call `probe()` to check the repository answers.
 */
export function openStorage(repository: RepositoryConfig): Storage {
  switch (repository.kind) {
    case 'file':
      return new FsStorage(repository.root);
    case 's3':
      return new S3Storage(repository.s3);
  }
}
