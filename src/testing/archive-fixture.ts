import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type GpgKeyPair, generateGpgKeyPair, signingEnv } from './gpg-keys.js';

/** OS user id the throwaway PostgreSQL runs as (Debian's postgres). */
export const PG_UID = Number(process.env['PMS_TEST_PG_UID'] ?? 101);

export interface ArchiveFixture {
  readonly work: string;
  readonly key: GpgKeyPair;
  readonly repoRoot: string;
  /** BACKUP_* for both the CLI and the server's archive_command / restore_command. */
  readonly env: Record<string, string>;
  remove(): void;
}

/**
 * A work directory, a key pair and a file:// repository that the throwaway server's OS user can
 * use too (wal-push writes, wal-fetch reads the private key), as the PITR tests all need.
 */
export async function createArchiveFixture(name: string, options: { passphrase?: string } = {}): Promise<ArchiveFixture> {
  const work = mkdtempSync(join(tmpdir(), `pms-${name}-`));
  chmodSync(work, 0o755);
  const key = await generateGpgKeyPair({ name: `PMS ${name}`, ...(options.passphrase ? { passphrase: options.passphrase } : {}) });
  chownSync(key.privateKeyFile, PG_UID, -1);
  if (key.passphraseFile) chownSync(key.passphraseFile, PG_UID, -1);
  const repoRoot = join(work, 'repo');
  mkdirSync(repoRoot, { mode: 0o700 });
  chownSync(repoRoot, PG_UID, -1);
  const env: Record<string, string> = {
    BACKUP_REPOSITORY: `file://${repoRoot}`,
    BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
    BACKUP_GPG_KEY_ID: key.fingerprint,
    BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile,
    ...(key.passphraseFile ? { BACKUP_GPG_PASSPHRASE_FILE: key.passphraseFile } : {}),
    ...signingEnv(key),
    BACKUP_LOG_DIR: join(work, 'logs'),
  };
  return {
    work,
    key,
    repoRoot,
    env,
    remove: () => {
      key.remove();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
