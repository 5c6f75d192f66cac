import type { Env } from './env-source.js';

/** `*_FILE` variables that name public material, not secrets. */
const PUBLIC_FILES = new Set(['BACKUP_GPG_PUBLIC_KEY_FILE', 'BACKUP_GPG_KEY_ID_FILE', 'BACKUP_TRUSTED_SIGNERS_FILE', 'POSTGRES_USER_FILE']);

/**
 * Every file the environment names as holding a secret: each NAME_FILE (the private key and its
 * passphrase, the signing key and its passphrase, passwords, AWS credentials, the DR copy's
 * credentials, AWS's own AWS_SHARED_CREDENTIALS_FILE and AWS_WEB_IDENTITY_TOKEN_FILE) and
 * PGPASSFILE, but not the public key, the key id, the trusted signers' public keys or the user
 * name. These are the files no throwaway server may read.
 */
export function secretFilePaths(env: Env): string[] {
  const paths = Object.entries(env)
    .filter(([name, value]) => value && (name === 'PGPASSFILE' || (name.endsWith('_FILE') && !PUBLIC_FILES.has(name))))
    .map(([, value]) => value as string);
  return [...new Set(paths)].sort();
}
