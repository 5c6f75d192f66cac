import { PmsError, isPmsError } from '../../errors/catalogue.js';

/**
 * Turns a filesystem errno into a catalogue error. Branches on `code`, never on message text.
 * Paths appear in messages (they are not secret and the operator needs them).
 */
export function fsError(error: unknown, action: string, path: string): PmsError {
  if (isPmsError(error)) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const details = { path, errno: code };
  switch (code) {
    case 'ENOENT':
      return new PmsError('PMS_ERR_NOT_FOUND', `cannot ${action}: ${path} does not exist`, { cause: error, details });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new PmsError(
        'PMS_ERR_REPO_ACCESS',
        `cannot ${action}: permission denied on ${path} (${code}); check the repository's owner, mode and mount options`,
        { cause: error, details },
      );
    case 'ENOSPC':
    case 'EDQUOT':
      return new PmsError(
        'PMS_ERR_REPO_UNAVAILABLE',
        `cannot ${action}: the filesystem holding ${path} is full (${code}); free space or grow the volume`,
        { cause: error, details },
      );
    case 'EIO':
    case 'ESTALE':
    case 'ENOTCONN':
    case 'ETIMEDOUT':
      return new PmsError('PMS_ERR_REPO_UNAVAILABLE', `cannot ${action}: I/O error on ${path} (${code}); check the volume and its mount`, {
        cause: error,
        details,
      });
    case 'ENOTDIR':
    case 'EISDIR':
    case 'EEXIST':
      return new PmsError(
        'PMS_ERR_USAGE',
        `cannot ${action}: ${path} clashes with an existing object or directory (${code}); in a file repository a key cannot be both an object and a prefix of other keys`,
        { cause: error, details },
      );
    default:
      return new PmsError(
        'PMS_ERR_REPO_UNAVAILABLE',
        `cannot ${action}: ${path}: ${code ?? (error instanceof Error ? error.message : String(error))}`,
        { cause: error, details },
      );
  }
}
