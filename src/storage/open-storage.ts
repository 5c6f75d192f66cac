import type { RepositoryConfig } from '../config/config.js';
import { PmsError } from '../errors/catalogue.js';
import { FsStorage } from './fs/fs-storage.js';
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
      // Temporary until the S3 driver lands (next commit); fails loudly rather than pretending.
      throw new PmsError('PMS_ERR_CONFIG', `s3:// repositories are not supported by this build yet (${repository.url})`);
  }
}
