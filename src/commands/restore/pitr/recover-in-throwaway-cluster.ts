import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BaseManifest } from '../../../repository/manifest.js';
import type { DecryptionKeys } from '../../../crypto/keys.js';
import type { TrustPolicy } from '../../../crypto/signing.js';
import { PmsError } from '../../../errors/catalogue.js';
import { findPgProgram } from '../../../postgres/binaries.js';
import { startTool } from '../../../process/tool-process.js';
import { type ThrowawayCluster, startThrowawayCluster } from '../../../postgres/throwaway-cluster.js';
import type { Storage } from '../../../storage/storage.js';
import { restoreCommand, writeRecoverySettings } from './recovery-settings.js';
import { unpackBaseBackup } from './unpack-base-backup.js';

export interface RecoverInThrowawayOptions {
  readonly storage: Storage;
  readonly keys: DecryptionKeys;
  readonly trust: TrustPolicy;
  readonly manifest: BaseManifest;
  /** BACKUP_* environment for the server's restore_command (repository and private key). */
  readonly serverEnv: NodeJS.ProcessEnv;
  /** How long recovery may take before giving up (default 600 s). */
  readonly timeoutSeconds?: number;
  readonly signal?: AbortSignal;
}

export interface RecoveredBaseBackup {
  readonly cluster: ThrowawayCluster;
  /** pg_verifybackup checked every unpacked file against the server's backup_manifest. */
  readonly filesVerified: boolean;
}

/**
 * For `verify` of a base backup: unpacks it into a throwaway server, checks the files against
 * the server's backup_manifest (pg_verifybackup, before anything is changed), recovers to the
 * end of the WAL archive and promotes, then returns the running server (the caller runs amcheck
 * and must destroy() it). Archiving is switched off so the verification never writes to the
 * repository, and access is local trust only, whatever the backed-up pg_hba.conf said.
 */
export async function recoverBaseBackupInThrowawayCluster(options: RecoverInThrowawayOptions): Promise<RecoveredBaseBackup> {
  let filesVerified = false;
  const cluster = await startThrowawayCluster({
    serverEnv: options.serverEnv,
    settings: { archive_mode: 'off', hot_standby: 'on' },
    populate: async (dataDir, osUser) => {
      await unpackBaseBackup({
        storage: options.storage,
        manifest: options.manifest,
        keys: options.keys,
        trust: options.trust,
        dataDir,
        runAs: osUser,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (existsSync(join(dataDir, 'backup_manifest'))) {
        await verifyFiles(dataDir, options.manifest.id, options.signal);
        filesVerified = true;
      }
      await writeFile(join(dataDir, 'pg_hba.conf'), 'local all all trust\nhost all all 127.0.0.1/32 trust\n');
      // Stay on the base backup's own timeline: a later PITR elsewhere may have archived a newer
      // timeline that forked before this backup, which 'latest' would try (and fail) to follow.
      await writeRecoverySettings(
        dataDir,
        {
          restoreCommand: restoreCommand(undefined, undefined, { allowUnsigned: options.trust.allowUnsigned ?? false }),
          target: 'latest',
          extra: { recovery_target_timeline: 'current' },
        },
        `pms-backup verify: base backup ${options.manifest.id}, to the end of its timeline in the archive`,
      );
    },
  });
  try {
    const deadline = Date.now() + (options.timeoutSeconds ?? 600) * 1000;
    while ((await cluster.psql('SELECT pg_is_in_recovery()')) !== 'f') {
      if (Date.now() > deadline)
        throw new PmsError(
          'PMS_ERR_WAL_TIMEOUT',
          `recovery of base backup ${options.manifest.id} did not finish within ${options.timeoutSeconds ?? 600} s`,
        );
      await sleep(200, undefined, options.signal ? { signal: options.signal } : {});
    }
    return { cluster, filesVerified };
  } catch (error) {
    await cluster.destroy().catch(() => undefined);
    throw error;
  }
}

/** pg_verifybackup without WAL parsing (recovery proves the WAL): sizes and checksums of every file. */
async function verifyFiles(dataDir: string, id: string, signal: AbortSignal | undefined): Promise<void> {
  const tool = startTool(findPgProgram('pg_verifybackup'), ['--no-parse-wal', '--quiet', dataDir], {
    stdout: 'ignore',
    ...(signal ? { signal } : {}),
  });
  try {
    await tool.done;
  } catch (error) {
    const detail = tool.stderr().trim().split('\n').slice(0, 5).join('; ');
    throw new PmsError(
      'PMS_ERR_INTEGRITY',
      `the files of base backup ${id} do not match the server's backup_manifest: ${detail || (error as Error).message}`,
      { cause: error },
    );
  }
}
