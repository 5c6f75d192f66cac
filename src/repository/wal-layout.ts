import { PmsError } from '../errors/catalogue.js';
import { type WalFile, hex8, parseWalFileName } from '../wal/wal-file-name.js';

/**
 * Where WAL lives in a repository (beside backups/, the same for every storage backend):
 *   wal/system.json                                   which PostgreSQL system this archive belongs to
 *   wal/history/<TTTTTTTT>.history.zst.gpg            timeline history files (write-once)
 *   wal/<TTTTTTTT>/<segment>.zst.gpg                  complete 16 MiB segments of timeline T
 *   wal/<TTTTTTTT>/<segment>.<offset>.backup.zst.gpg  backup history files
 *   wal/<TTTTTTTT>/<segment>.partial.<sha12>.zst.gpg  partial segments left by a promotion
 * Partial segments carry a hash of their content in the key: two restores of the same backup that
 * promote at different points each leave a different partial of the same name, and both are
 * kept. wal-fetch never maps a requested name onto a .partial key, so one is never served as a
 * complete segment.
 */
export const WAL_PREFIX = 'wal/';
export const WAL_HISTORY_PREFIX = `${WAL_PREFIX}history/`;
export const WAL_SYSTEM_KEY = `${WAL_PREFIX}system.json`;
export const WAL_SUFFIX = '.zst.gpg';

export function timelinePrefix(timeline: number): string {
  return `${WAL_PREFIX}${hex8(timeline)}/`;
}

/** The key a file is archived under; `sha256` (of the plaintext) is needed for partials only. */
export function walObjectKey(file: WalFile, sha256?: string): string {
  switch (file.kind) {
    case 'history':
      return `${WAL_HISTORY_PREFIX}${file.name}${WAL_SUFFIX}`;
    case 'partial':
      if (sha256 === undefined) throw new PmsError('PMS_ERR_INTERNAL', `the key of partial segment ${file.name} needs its sha256`);
      return `${timelinePrefix(file.timeline)}${file.name}.${sha256.slice(0, 12)}${WAL_SUFFIX}`;
    case 'segment':
    case 'backup-history':
      return `${timelinePrefix(file.timeline)}${file.name}${WAL_SUFFIX}`;
  }
}

/** The archived file a key holds, or undefined for keys that are not WAL objects. */
export function walFileOfKey(key: string): WalFile | undefined {
  if (!key.startsWith(WAL_PREFIX) || !key.endsWith(WAL_SUFFIX)) return undefined;
  const base = key.slice(key.lastIndexOf('/') + 1, -WAL_SUFFIX.length);
  const partial = /^([0-9A-F]{24}\.partial)\.[0-9a-f]{12}$/.exec(base);
  return parseWalFileName(partial?.[1] ?? base);
}

/** Object metadata names (lower-case: S3 lower-cases them on the way back). */
export const WAL_METADATA = {
  /** sha256 of the plaintext file: recognises an identical re-push although encryption is not deterministic. */
  sha256: 'pms-wal-sha256',
  bytes: 'pms-wal-bytes',
  systemIdentifier: 'pms-system-id',
  name: 'pms-wal-name',
} as const;
