import { randomBytes } from 'node:crypto';

/**
 * Where things live in a repository (the same for every storage backend):
 *   backups/<id>/pms-backup-<id>.dump.zst.gpg   encrypted, compressed pg_dump custom archive
 *   backups/<id>/pms-base-<id>.tar.zst.gpg        encrypted, compressed base backup tar
 *   backups/<id>/pms-base-<id>.backup_manifest.gpg  the server's backup_manifest, encrypted
 *   backups/<id>/manifest.json                  commit record, written last
 */
export const BACKUPS_PREFIX = 'backups/';

export function backupPrefix(id: string): string {
  return `${BACKUPS_PREFIX}${id}/`;
}

export function manifestKey(id: string): string {
  return `${backupPrefix(id)}manifest.json`;
}

export function logicalDumpKey(id: string): string {
  return `${backupPrefix(id)}pms-backup-${id}.dump.zst.gpg`;
}

/** Time-sortable id: 20261123T051200Z-3f9a (UTC; the suffix separates backups in one second). */
export function newBackupId(now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
  return `${stamp}-${randomBytes(2).toString('hex')}`;
}

const ID_PATTERN = /^\d{8}T\d{6}Z-[0-9a-f]{4}$/;

export function isBackupId(value: string): boolean {
  return ID_PATTERN.test(value);
}

/** The id part of a key under backups/, or undefined. */
export function backupIdOfKey(key: string): string | undefined {
  if (!key.startsWith(BACKUPS_PREFIX)) return undefined;
  const id = key.slice(BACKUPS_PREFIX.length).split('/')[0];
  return id !== undefined && isBackupId(id) ? id : undefined;
}

/** Creation time encoded in an id. */
export function timeOfId(id: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(id);
  if (!m) return new Date(Number.NaN);
  return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

/** Physical base backup object: the data directory as one tar, zstd, OpenPGP. */
export function baseBackupKey(id: string): string {
  return `${backupPrefix(id)}pms-base-${id}.tar.zst.gpg`;
}

/** The server's backup_manifest of a base backup (checksums per file), OpenPGP. */
export function baseBackupManifestKey(id: string): string {
  return `${backupPrefix(id)}pms-base-${id}.backup_manifest.gpg`;
}
