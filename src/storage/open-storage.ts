import type { RepositoryConfig } from '../config/config.js';
import { FsStorage } from './fs/fs-storage.js';
import { LazyStorage } from './lazy-storage.js';
import type { Storage } from './storage.js';

/** The repository URL without credentials (S3 URLs never carry any; this is what messages show). */
function s3Location(repository: Extract<RepositoryConfig, { kind: 's3' }>): string {
  const { bucket, prefix } = repository.s3;
  return `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
}

/**
 * The only place that knows which backends exist: everything else receives a `Storage`.
 * Opening is cheap and does no I/O; call `probe()` to check the repository answers.
 */
export function openStorage(repository: RepositoryConfig): Storage {
  switch (repository.kind) {
    case 'file':
      return new FsStorage(repository.root);
    case 's3':
      return new LazyStorage(s3Location(repository), async () => {
        // The SDK warns on every process start under Node 20 that its 2027 releases will need
        // Node 22; our lockfile pins a release that supports 20, and the warning would land in
        // every CronJob's and archive_command's log.
        process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
        const { S3Storage } = await import('./s3/s3-storage.js');
        return new S3Storage(repository.s3);
      });
  }
}
