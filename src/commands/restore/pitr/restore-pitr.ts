import type { BaseManifest } from '../../../repository/manifest.js';
import type { DecryptionKeys } from '../../../crypto/keys.js';
import type { TrustPolicy } from '../../../crypto/signing.js';
import type { Storage } from '../../../storage/storage.js';
import { type TargetTime, chooseBaseBackup } from './choose-base-backup.js';
import { prefetchCleanCommand, restoreCommand, spoolFirstRestoreCommand, writeRecoverySettings } from './recovery-settings.js';
import { prepareTargetDirectory } from './target-directory.js';
import { unpackBaseBackup } from './unpack-base-backup.js';
import { type MissingInclude, missingConfigIncludes } from './config-includes.js';

export interface PitrRestoreOptions {
  readonly storage: Storage;
  /** May still be loading (a passphrase-protected key takes a while): needed only once the download starts. */
  readonly keys: DecryptionKeys | Promise<DecryptionKeys>;
  /** Whose signatures the base backup (and, through restore_command, the WAL) must carry. */
  readonly trust: TrustPolicy;
  readonly target: TargetTime;
  readonly dataDir: string;
  /** A base backup id (or `latest`) instead of the automatic choice. */
  readonly base?: string;
  readonly onProgress?: (fetchedBytes: number, totalBytes: number) => void;
  readonly signal?: AbortSignal;
  /** false (BACKUP_WAL_PREFETCH=0): restore_command is plain wal-fetch, without the spool check. */
  readonly prefetch?: boolean;
}

export interface PitrRestoreResult {
  readonly base: BaseManifest;
  readonly dataDir: string;
  readonly osUser: string | undefined;
  readonly target: string;
  readonly restoreCommand: string;
  readonly bytes: number;
  readonly durationSeconds: number;
  /** Files the restored postgresql.conf includes that this host lacks (a Patroni member's pod configuration). */
  readonly missingIncludes: readonly MissingInclude[];
}

/**
 * Prepares a data directory that, when started, recovers to the target: the chosen base backup
 * unpacked, restore_command pointing at wal-fetch, the recovery target and recovery.signal
 * (standby.signal for 'latest': wal-fetch promotes it at the end of the archive, promote-at-end.ts).
 * Nothing is left behind on failure (the directory is emptied, or removed if we created it).
 */
export async function restorePitr(options: PitrRestoreOptions): Promise<PitrRestoreResult> {
  const started = Date.now();
  const base = await chooseBaseBackup(options.storage, options.trust, options.target, options.base);
  const directory = await prepareTargetDirectory(options.dataDir);
  try {
    const { bytes } = await unpackBaseBackup({
      storage: options.storage,
      manifest: base,
      keys: await options.keys,
      trust: options.trust,
      dataDir: directory.path,
      runAs: directory.osUser,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const allowUnsigned = options.trust.allowUnsigned ?? false;
    // To the end of the archive: a standby promoted there opens without the end-of-recovery checkpoint.
    const promoteAtEnd = options.target === 'latest';
    const command =
      options.prefetch === false
        ? restoreCommand(undefined, undefined, { allowUnsigned, promoteAtEnd })
        : spoolFirstRestoreCommand(base.systemIdentifier, undefined, undefined, { allowUnsigned, promoteAtEnd });
    const target = options.target === 'latest' ? 'latest' : options.target.toISOString();
    await writeRecoverySettings(
      directory.path,
      { restoreCommand: command, recoveryEndCommand: prefetchCleanCommand(), target: options.target, promoteAtEnd },
      `pms-backup restore --pitr: base backup ${base.id}, target ${target}`,
    );
    const missingIncludes = await missingConfigIncludes(directory.path);
    return {
      base,
      missingIncludes,
      dataDir: directory.path,
      osUser: directory.osUser,
      target,
      restoreCommand: command,
      bytes,
      durationSeconds: (Date.now() - started) / 1000,
    };
  } catch (error) {
    await directory.discard().catch(() => undefined);
    throw error;
  }
}
