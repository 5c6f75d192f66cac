import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
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
  await runTool('gpg', [...base, ...timeArgs, '--quick-gen-key', `${name} <${email}>`, primary, 'cert', expire], {
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
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
