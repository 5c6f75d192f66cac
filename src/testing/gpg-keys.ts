import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTool } from '../process/tool-process.js';

export interface GpgKeyPair {
  readonly fingerprint: string;
  /** Long ID of the encryption subkey. */
  readonly encryptionKeyId: string;
  readonly publicKeyFile: string;
  readonly privateKeyFile: string;
  readonly passphraseFile: string | undefined;
  /** GNUPGHOME holding the secret key, for break-glass tests with the real gpg. */
  readonly gnupgHome: string;
  readonly dir: string;
  remove(): void;
}

export interface GpgKeyOptions {
  readonly name?: string;
  readonly passphrase?: string;
  /** gpg expiry such as '2y', '1d' or 'never'. */
  readonly expire?: string;
  /** Create the key as if on this date (gpg --faked-system-time), e.g. to make it already expired. */
  readonly createdAt?: Date;
  readonly algorithm?: 'ed25519' | 'rsa4096' | 'rsa2048';
}

function gpgTime(date: Date): string {
  return `${date.toISOString().replace(/[-:]/g, '').slice(0, 15)}!`;
}

/**
 * Generates a key pair with the real gpg, as the trust's operators would (seed step 1), in its
 * own GNUPGHOME, and exports the armored files pms-backup reads. For tests and the demo only.
 */
export async function generateGpgKeyPair(options: GpgKeyOptions = {}): Promise<GpgKeyPair> {
  const dir = mkdtempSync(join(tmpdir(), 'pms-gpg-'));
  const gnupgHome = join(dir, 'gnupg');
  await runTool('mkdir', ['-m', '700', gnupgHome]);
  const name = options.name ?? 'PMS Backup Test';
  const email = `${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}@pms.invalid`;
  const passphrase = options.passphrase ?? '';
  const env = { ...process.env, GNUPGHOME: gnupgHome };
  const base = ['--batch', '--no-tty', '--pinentry-mode', 'loopback', '--passphrase-fd', '0'];
  const timeArgs = options.createdAt ? ['--faked-system-time', gpgTime(options.createdAt)] : [];
  const algorithm = options.algorithm ?? 'ed25519';
  const [primary, sub] = algorithm === 'ed25519' ? ['ed25519', 'cv25519'] : [algorithm, algorithm];
  const expire = options.expire ?? '2y';
  // The primary key signs (and certifies), so one test key pair serves as encryption key,
  // signing key (BACKUP_SIGNING_KEY_FILE) and trusted signer (BACKUP_TRUSTED_SIGNERS_FILE).
  await runTool('gpg', [...base, ...timeArgs, '--quick-gen-key', `${name} <${email}>`, primary, 'sign', expire], {
    env,
    input: `${passphrase}\n`,
  });
  const listing = (await runTool('gpg', ['--batch', '--with-colons', '--list-keys', email], { env })).stdout;
  const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(listing)?.[1] ?? '';
  await runTool('gpg', [...base, ...timeArgs, '--quick-add-key', fingerprint, sub, 'encr', expire], { env, input: `${passphrase}\n` });
  const after = (await runTool('gpg', ['--batch', '--with-colons', '--list-keys', fingerprint], { env })).stdout;
  const encryptionKeyId = /^sub:[^:]*:[^:]*:[^:]*:([0-9A-F]{16}):/m.exec(after)?.[1] ?? '';
  const publicKey = (await runTool('gpg', ['--batch', '--armor', '--export', fingerprint], { env })).stdout;
  const privateKey = (await runTool('gpg', [...base, '--armor', '--export-secret-keys', fingerprint], { env, input: `${passphrase}\n` }))
    .stdout;
  const publicKeyFile = join(dir, 'public.asc');
  const privateKeyFile = join(dir, 'private.asc');
  writeFileSync(publicKeyFile, publicKey);
  writeFileSync(privateKeyFile, privateKey, { mode: 0o600 });
  let passphraseFile: string | undefined;
  if (passphrase) {
    passphraseFile = join(dir, 'passphrase');
    writeFileSync(passphraseFile, `${passphrase}\n`, { mode: 0o600 });
  }
  chmodSync(dir, 0o755);
  return {
    fingerprint,
    encryptionKeyId,
    publicKeyFile,
    privateKeyFile,
    passphraseFile,
    gnupgHome,
    dir,
    remove: () => {
      // gpg started an agent for this home when it generated and exported the secret key: it would
      // outlive the directory (and keep the key in memory).
      spawnSync('gpgconf', ['--homedir', gnupgHome, '--kill', 'gpg-agent'], { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The signing variables for a test key pair: it signs what it writes and trusts only itself. */
export function signingEnv(key: GpgKeyPair, trusted: readonly GpgKeyPair[] = [key]): Record<string, string> {
  return {
    BACKUP_SIGNING_KEY_FILE: key.privateKeyFile,
    ...(key.passphraseFile ? { BACKUP_SIGNING_PASSPHRASE_FILE: key.passphraseFile } : {}),
    BACKUP_TRUSTED_SIGNERS_FILE: trusted.length === 1 ? trusted[0]!.publicKeyFile : trustedFile(trusted),
  };
}

/** One armored file holding the public keys of several test key pairs (a rotation's old and new signer). */
export function trustedFile(keys: readonly GpgKeyPair[]): string {
  const first = keys[0];
  if (!first) throw new Error('trustedFile needs at least one key');
  const path = join(first.dir, `trusted-${keys.map((k) => k.fingerprint.slice(-8)).join('-')}.asc`);
  writeFileSync(path, keys.map((k) => readFileSync(k.publicKeyFile, 'utf8')).join('\n'));
  return path;
}
