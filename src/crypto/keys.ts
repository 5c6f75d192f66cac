import { readFile } from 'node:fs/promises';
import * as openpgp from 'openpgp';
import { PmsError } from '../errors/catalogue.js';

export interface KeyDescription {
  readonly fingerprint: string;
  /** Long (16 hex) IDs of the primary key and every subkey, upper-case. */
  readonly keyIds: readonly string[];
  readonly userIds: readonly string[];
  readonly algorithm: string;
  readonly bits: number | undefined;
  readonly createdAt: string;
  /** ISO time, or null when the key never expires. */
  readonly expiresAt: string | null;
  readonly expired: boolean;
  readonly secret: boolean;
}

/** Public keys backups are encrypted to (current key plus any break-glass keys). */
export interface RecipientSet {
  readonly keys: readonly openpgp.PublicKey[];
  readonly descriptions: readonly KeyDescription[];
}

export interface DecryptionKeys {
  readonly keys: readonly openpgp.PrivateKey[];
  readonly descriptions: readonly KeyDescription[];
}

const normalizeId = (id: string): string => id.replace(/^0x/i, '').replace(/\s+/g, '').toUpperCase();

export async function describeKey(key: openpgp.Key, now = new Date()): Promise<KeyDescription> {
  const info = key.getAlgorithmInfo();
  const expiry = await key.getExpirationTime().catch(() => null);
  const expiresAt = expiry instanceof Date ? expiry.toISOString() : null;
  const keyIds = [key.getKeyID(), ...key.getSubkeys().map((s) => s.getKeyID())].map((id) => id.toHex().toUpperCase());
  return {
    fingerprint: key.getFingerprint().toUpperCase(),
    keyIds,
    userIds: key.getUserIDs(),
    algorithm: info.algorithm,
    bits: 'bits' in info && typeof info.bits === 'number' ? info.bits : undefined,
    createdAt: key.getCreationTime().toISOString(),
    expiresAt,
    expired: expiry instanceof Date && expiry.getTime() <= now.getTime(),
    secret: key.isPrivate(),
  };
}

/** True when `id` (short/long key ID or fingerprint) names this key or one of its subkeys. */
export function keyMatches(description: KeyDescription, id: string): boolean {
  const wanted = normalizeId(id);
  if (wanted.length === 40) return description.fingerprint === wanted;
  return description.keyIds.some((k) => k.endsWith(wanted)) || description.fingerprint.endsWith(wanted);
}

/**
 * A key file made by concatenating exports (`gpg --export A >> keys.asc; gpg --export B >>
 * keys.asc`) holds several armor blocks; openpgp.readKeys reads only the first, so split them.
 */
function armorBlocks(text: string, kind: 'PUBLIC' | 'PRIVATE'): string[] {
  const pattern = new RegExp(`-----BEGIN PGP ${kind} KEY BLOCK-----[\\s\\S]*?-----END PGP ${kind} KEY BLOCK-----`, 'g');
  return text.match(pattern) ?? [text];
}

async function readArmored(path: string, what: string, variable: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new PmsError('PMS_ERR_KEY', `${variable}: cannot read ${what} file ${path} (${reason})`, { cause: error });
  }
}

export async function readPublicKeyFile(path: string): Promise<openpgp.Key[]> {
  const armored = await readArmored(path, 'public key', 'BACKUP_GPG_PUBLIC_KEY_FILE');
  let keys: openpgp.Key[];
  try {
    const blocks = await Promise.all(armorBlocks(armored, 'PUBLIC').map((block) => openpgp.readKeys({ armoredKeys: block })));
    keys = blocks.flat();
  } catch (error) {
    throw new PmsError(
      'PMS_ERR_KEY',
      `BACKUP_GPG_PUBLIC_KEY_FILE: ${path} holds no readable armored OpenPGP public key (${(error as Error).message})`,
      { cause: error },
    );
  }
  refusePrivateKeys(keys, path, 'BACKUP_GPG_PUBLIC_KEY_FILE', 'every job that encrypts would then hold the key that decrypts every backup');
  return keys;
}

/**
 * openpgp reads a secret key wherever a public one is asked for (it holds the public part too),
 * so a private key mounted as a public key file would work silently, and the decryption key
 * would sit in every job that only needs to encrypt. Refused, by what the parsed packets are,
 * not by the armor's header line.
 */
export function refusePrivateKeys(keys: readonly openpgp.Key[], path: string, variable: string, why: string): void {
  const secret = keys.filter((k) => k.isPrivate());
  if (secret.length === 0) return;
  throw new PmsError(
    'PMS_ERR_KEY',
    `${variable}: ${path} holds a private key (${secret.map((k) => k.getFingerprint().toUpperCase()).join(', ')}), not only public keys: ${why}; mount the public key alone (gpg --armor --export FINGERPRINT) and keep the private key where only restore and verify read it`,
    { details: { fingerprints: secret.map((k) => k.getFingerprint().toUpperCase()) } },
  );
}

/**
 * Loads the recipients for a new backup. Every key in the file is a recipient (current key and
 * break-glass keys); `keyId` must be one of them so a wrongly mounted key file is an error, and
 * no key may be expired or revoked (a backup nobody can later be sure to decrypt is refused).
 */
export async function loadRecipients(publicKeyFile: string, keyId: string, now = new Date()): Promise<RecipientSet> {
  const keys = (await readPublicKeyFile(publicKeyFile)).map((k) => k.toPublic());
  const descriptions = await Promise.all(keys.map((k) => describeKey(k, now)));
  if (!descriptions.some((d) => keyMatches(d, keyId))) {
    throw new PmsError(
      'PMS_ERR_KEY',
      `BACKUP_GPG_KEY_ID ${normalizeId(keyId)} is not among the keys in BACKUP_GPG_PUBLIC_KEY_FILE (found ${descriptions.map((d) => d.fingerprint).join(', ')}): mount the right key or fix the key ID`,
    );
  }
  for (const [index, key] of keys.entries()) {
    const description = descriptions[index];
    try {
      await key.getEncryptionKey(undefined, now);
    } catch (error) {
      const expired = description?.expired === true;
      throw new PmsError(
        expired ? 'PMS_ERR_KEY_EXPIRED' : 'PMS_ERR_KEY',
        expired
          ? `key ${description?.fingerprint} expired on ${description?.expiresAt}: refusing to encrypt to it; extend its expiry or rotate to a new key (docs/key-rotation.md)`
          : `key ${description?.fingerprint} cannot encrypt (${(error as Error).message}): use a key with a valid encryption subkey`,
        { cause: error, details: { fingerprint: description?.fingerprint } },
      );
    }
  }
  return { keys, descriptions };
}

/**
 * Loads and unlocks private keys for restore/verify. The file may hold several keys (old keys
 * are kept after rotation); each backup picks the one it was encrypted to.
 */
export async function loadDecryptionKeys(privateKeyFile: string, passphraseFile: string | undefined): Promise<DecryptionKeys> {
  const armored = await readArmored(privateKeyFile, 'private key', 'BACKUP_GPG_PRIVATE_KEY_FILE');
  let keys: openpgp.PrivateKey[];
  try {
    const blocks = await Promise.all(armorBlocks(armored, 'PRIVATE').map((block) => openpgp.readPrivateKeys({ armoredKeys: block })));
    keys = blocks.flat();
  } catch (error) {
    throw new PmsError(
      'PMS_ERR_KEY',
      `BACKUP_GPG_PRIVATE_KEY_FILE: ${privateKeyFile} holds no readable armored OpenPGP private key (${(error as Error).message})`,
      { cause: error },
    );
  }
  let passphrase: string | undefined;
  if (passphraseFile !== undefined) {
    passphrase = (await readArmored(passphraseFile, 'passphrase', 'BACKUP_GPG_PASSPHRASE_FILE')).replace(/\r?\n$/, '');
  }
  const unlocked: openpgp.PrivateKey[] = [];
  for (const key of keys) {
    if (key.isDecrypted()) {
      unlocked.push(key);
      continue;
    }
    if (passphrase === undefined) {
      throw new PmsError(
        'PMS_ERR_KEY',
        `private key ${key.getFingerprint().toUpperCase()} is passphrase-protected: set BACKUP_GPG_PASSPHRASE_FILE`,
      );
    }
    try {
      unlocked.push(await openpgp.decryptKey({ privateKey: key, passphrase }));
    } catch (error) {
      throw new PmsError(
        'PMS_ERR_KEY',
        `the passphrase in BACKUP_GPG_PASSPHRASE_FILE does not unlock private key ${key.getFingerprint().toUpperCase()}`,
        { cause: error },
      );
    }
  }
  return { keys: unlocked, descriptions: await Promise.all(unlocked.map((k) => describeKey(k))) };
}

/** Describes every key in an armored key file without unlocking anything (the keys command). */
export async function describeKeyFile(path: string, kind: 'public' | 'private', now = new Date()): Promise<KeyDescription[]> {
  if (kind === 'public') return Promise.all((await readPublicKeyFile(path)).map((k) => describeKey(k, now)));
  const armored = await readArmored(path, 'private key', 'BACKUP_GPG_PRIVATE_KEY_FILE');
  try {
    const blocks = await Promise.all(armorBlocks(armored, 'PRIVATE').map((block) => openpgp.readPrivateKeys({ armoredKeys: block })));
    return Promise.all(blocks.flat().map((k) => describeKey(k, now)));
  } catch (error) {
    throw new PmsError(
      'PMS_ERR_KEY',
      `BACKUP_GPG_PRIVATE_KEY_FILE: ${path} holds no readable armored OpenPGP private key (${(error as Error).message})`,
      { cause: error },
    );
  }
}
