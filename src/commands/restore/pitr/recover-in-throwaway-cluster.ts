import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
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
import { writeRecoverySettings } from './recovery-settings.js';
import { type WalFeed, startWalFeed } from './wal-feed.js';
import { unpackBaseBackup } from './unpack-base-backup.js';

export interface RecoverInThrowawayOptions {
  readonly storage: Storage;
  readonly keys: DecryptionKeys;
  readonly trust: TrustPolicy;
  readonly manifest: BaseManifest;
  /** Files the sandboxed server must not be able to read (the private key, credentials). */
  readonly protectedFiles: readonly string[];
  /** How long recovery may take before giving up (default 600 s). */
  readonly timeoutSeconds?: number;
  readonly signal?: AbortSignal;
}

export interface RecoveredBaseBackup {
  readonly cluster: ThrowawayCluster;
  /** pg_verifybackup checked every unpacked file against the server's backup_manifest. */
  readonly filesVerified: boolean;
  /** WAL files recovery was given. */
  readonly walFiles: number;
}

/**
 * For `verify` of a base backup: unpacks it into a throwaway server, checks the files against
 * the server's backup_manifest (pg_verifybackup, before anything is changed), recovers to the
 * end of the WAL archive and promotes, then returns the running server (the caller runs amcheck
 * and must destroy() it). The server is a sandbox (throwaway-cluster.ts): the base backup's
 * configuration and whatever code it carries run there, so it gets no credentials and no key;
 * its WAL comes from a feed inside this process (wal-feed.ts). Archiving is off, so the
 * verification never writes to the repository, and access is the sandbox's, whatever the
 * backed-up pg_hba.conf said.
 */
export async function recoverBaseBackupInThrowawayCluster(options: RecoverInThrowawayOptions): Promise<RecoveredBaseBackup> {
  let filesVerified = false;
  let feed: WalFeed | undefined;
  const closeFeed = async (): Promise<void> => {
    await feed?.close();
  };
  let cluster: ThrowawayCluster;
  try {
    cluster = await startThrowawayCluster({
      sandbox: { protectedFiles: options.protectedFiles },
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
        const owner = await stat(dataDir);
        feed = await startWalFeed({
          storage: options.storage,
          keys: options.keys,
          trust: options.trust,
          systemIdentifier: options.manifest.systemIdentifier,
          serverOwner: { uid: owner.uid, gid: owner.gid },
          ...(options.signal ? { signal: options.signal } : {}),
        });
        // Stay on the base backup's own timeline: a later PITR elsewhere may have archived a newer
        // timeline that forked before this backup, which 'latest' would try (and fail) to follow.
        await writeRecoverySettings(
          dataDir,
          { restoreCommand: feed.restoreCommand, target: 'latest', extra: { recovery_target_timeline: 'current' } },
          `pms-backup verify: base backup ${options.manifest.id}, to the end of its timeline in the archive`,
        );
      },
    });
  } catch (error) {
    await closeFeed().catch(() => undefined);
    throw error;
  }
  try {
    const deadline = Date.now() + (options.timeoutSeconds ?? 600) * 1000;
    while ((await cluster.psql('SELECT pg_is_in_recovery()')) !== 'f') {
      if (Date.now() > deadline) {
        const why = feed?.failures()[0];
        throw new PmsError(
          'PMS_ERR_WAL_TIMEOUT',
          `recovery of base backup ${options.manifest.id} did not finish within ${options.timeoutSeconds ?? 600} s${why ? ` (fetching WAL failed: ${why})` : ''}`,
        );
      }
      await sleep(200, undefined, options.signal ? { signal: options.signal } : {});
    }
    const walFiles = feed?.served() ?? 0;
    await closeFeed();
    return { cluster, filesVerified, walFiles };
  } catch (error) {
    await closeFeed().catch(() => undefined);
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
