import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { baseBackupKey, manifestKey, newBackupId } from '../catalog/layout.js';
import { type BaseManifest, baseManifestSchema } from '../catalog/manifest.js';
import type { BackupConfig } from '../config/config.js';
import type { RecipientSet } from '../crypto/keys.js';
import { PmsError, isPmsError } from '../errors/catalogue.js';
import { storeCompressedEncrypted } from '../backup/store-encrypted.js';
import { usingClient } from '../postgres/connect.js';
import type { Storage } from '../storage/storage.js';
import { BACKUP_HISTORY_METADATA } from '../wal/push-wal-file.js';
import { segmentBeforeLsn, segmentName, segmentOfLsn } from '../wal/wal-file-name.js';
import { readArchiveIdentity, systemMismatch } from '../wal/wal-identity.js';
import { timelinePrefix, walFileOfKey, walObjectKey } from '../wal/wal-layout.js';
import { type BackupPoints, startBaseBackup } from './pg-basebackup.js';
import { osUserName } from '../process/os-user.js';
import { linkAbort } from '../process/linked-abort.js';

export interface BaseBackupProgress {
  readonly phase: 'copying' | 'waiting-for-wal' | 'committing';
  readonly plainBytes: number;
  readonly storedBytes: number;
}

export interface CreateBaseBackupOptions {
  readonly config: BackupConfig;
  readonly storage: Storage;
  readonly recipients: RecipientSet;
  readonly zstdLevel?: number;
  /** How long to wait for the stop segment to appear in the archive (default 300 s). */
  readonly walTimeoutSeconds?: number;
  readonly onProgress?: (progress: BaseBackupProgress) => void;
  readonly signal?: AbortSignal;
  readonly now?: () => Date;
}

/**
 * pg_basebackup (tar, no WAL) → zstd → OpenPGP → repository, streamed with backpressure like the
 * logical backup. The manifest, the commit record, is written only once the WAL from the start
 * to the stop segment is in the repository: a base backup without its WAL restores nothing.
 */
export async function createBaseBackup(options: CreateBaseBackupOptions): Promise<BaseManifest> {
  const { config, storage, recipients } = options;
  const now = options.now ?? (() => new Date());
  const startedAt = now();
  const id = newBackupId(startedAt);
  const objectKey = baseBackupKey(id);
  // Level 1: on the 1.9 GB pgbench cluster zstd -1 -T2 needs 1.46 CPU-s against 2.03 for -3
  // and stores 83.6 MB against 83.8 MB (docs/performance.md).
  const level = options.zstdLevel ?? 1;

  const server = await usingClient(config.postgres, async (client) => {
    const result = await client.query<{ system_identifier: string; server_version: string; server_version_num: string; archive_mode: string }>(
      `SELECT (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
              current_setting('server_version') AS server_version, current_setting('server_version_num') AS server_version_num,
              current_setting('archive_mode') AS archive_mode`,
    );
    return result.rows[0];
  });
  if (!server) throw new PmsError('PMS_ERR_DB_QUERY', 'could not read the server identity');
  if (server.archive_mode === 'off') {
    throw new PmsError('PMS_ERR_CONFIG', `archive_mode is off on ${config.postgres.host}:${config.postgres.port}: a base backup is useless without archived WAL; set archive_mode = on and archive_command = 'pms-backup wal-push %p' (docs/pitr.md)`);
  }
  const archiveSystem = await readArchiveIdentity(storage);
  if (archiveSystem !== undefined && archiveSystem !== server.system_identifier) throw systemMismatch(storage, archiveSystem, server.system_identifier);

  // Our own abort (stops the programs on the first failure) that also follows the caller's.
  const link = linkAbort(options.signal);
  const abort = link.controller;
  let objectWritten = false;
  const label = `pms-base-${id}`;
  try {
    const before = await walPosition(config);
    const basebackup = startBaseBackup(config.postgres, label, abort.signal);
    // The tar goes from pg_basebackup straight into zstd (copying 1.9 GB through Node cost
    // ~1.5 CPU-s, docs/performance.md); zstd reports the exact plain size, and the start and stop
    // points come from the backup history file PostgreSQL archives when the backup ends.
    const result = await storeCompressedEncrypted({
      producer: basebackup,
      storage,
      key: objectKey,
      recipients,
      level,
      abort,
      metadata: { 'pms-backup-id': id },
      onProgress: (plainSoFar, storedBytes) => options.onProgress?.({ phase: 'copying', plainBytes: plainSoFar, storedBytes }),
      onStored: () => {
        objectWritten = true;
      },
    });
    const finishedAt = now();
    const { plainBytes } = result;
    const walTimeoutSeconds = options.walTimeoutSeconds ?? 300;
    const points = await findBackupPoints(storage, config, label, before, walTimeoutSeconds, abort.signal);
    const startWalSegment = segmentName(points.timeline, segmentOfLsn(points.startLsn));
    const stopWalSegment = segmentName(points.timeline, segmentBeforeLsn(points.stopLsn));
    options.onProgress?.({ phase: 'waiting-for-wal', plainBytes, storedBytes: result.storedBytes });
    await waitForArchivedSegment(storage, points.timeline, stopWalSegment, walTimeoutSeconds, abort.signal);
    options.onProgress?.({ phase: 'committing', plainBytes, storedBytes: result.storedBytes });
    const manifest: BaseManifest = baseManifestSchema.parse({
      formatVersion: 1,
      id,
      kind: 'base',
      systemIdentifier: server.system_identifier,
      timeline: points.timeline,
      startLsn: points.startLsn,
      stopLsn: points.stopLsn,
      startWalSegment,
      stopWalSegment,
      serverVersion: server.server_version,
      serverVersionNum: Number(server.server_version_num),
      startedAt: startedAt.toISOString(),
      // The moment pg_basebackup returned, i.e. after its stop point: the earliest time a
      // point-in-time restore from this backup can target.
      finishedAt: finishedAt.toISOString(),
      durationSeconds: (finishedAt.getTime() - startedAt.getTime()) / 1000,
      bytes: { plain: plainBytes, compressed: result.compressedBytes, stored: result.storedBytes },
      compression: { algorithm: 'zstd', level },
      encryption: { format: 'openpgp', recipients: recipients.descriptions.map((d) => d.fingerprint) },
      keyFingerprints: recipients.descriptions.map((d) => d.fingerprint),
      objects: [{ key: objectKey, bytes: result.storedBytes, sha256: result.sha256 }],
      host: hostname(),
      createdBy: osUserName(),
    });
    await storage.putBytes(manifestKey(id), `${JSON.stringify(manifest, null, 2)}\n`, { ifAbsent: true });
    return manifest;
  } catch (error) {
    abort.abort(error);
    if (objectWritten) await storage.delete(objectKey).catch(() => undefined);
    if (isPmsError(error)) throw error;
    throw new PmsError('PMS_ERR_INTERNAL', `base backup failed: ${(error as Error).message ?? String(error)}`, { cause: error });
  } finally {
    link.unlink();
  }
}

interface WalPosition {
  readonly lsn: string;
  readonly timeline: number;
}

async function walPosition(config: BackupConfig): Promise<WalPosition> {
  return usingClient(config.postgres, async (client) => {
    const result = await client.query<{ lsn: string; timeline: number }>(
      'SELECT pg_current_wal_lsn()::text AS lsn, (SELECT timeline_id FROM pg_control_checkpoint()) AS timeline',
    );
    const row = result.rows[0];
    if (!row) throw new PmsError('PMS_ERR_DB_QUERY', 'could not read the current WAL position');
    return { lsn: row.lsn, timeline: Number(row.timeline) };
  });
}

/**
 * The start and stop points of the backup labelled `label`, from the backup history file
 * (`<start segment>.<offset>.backup`) that PostgreSQL wrote when the backup ended and, with
 * -X none, waited to see archived before pg_basebackup returned; wal-push records its points
 * as object metadata. The file lies in the segment of the start point, which is at or after
 * the WAL position read before the backup began (the backup's checkpoint starts later) and
 * before the current one: only those few segments are listed.
 */
async function findBackupPoints(storage: Storage, config: BackupConfig, label: string, before: WalPosition, timeoutSeconds: number, signal: AbortSignal): Promise<BackupPoints> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let withoutMetadata: string | undefined;
  for (let delay = 200; ; delay = Math.min(delay * 2, 5000)) {
    const after = await walPosition(config);
    for (const timeline of new Set([before.timeline, after.timeline])) {
      for (let segment = segmentOfLsn(before.lsn); segment <= segmentOfLsn(after.lsn); segment++) {
        for await (const object of storage.list(`${timelinePrefix(timeline)}${segmentName(timeline, segment)}.`)) {
          if (walFileOfKey(object.key)?.kind !== 'backup-history') continue;
          const metadata = (await storage.head(object.key))?.metadata ?? {};
          const startLsn = metadata[BACKUP_HISTORY_METADATA.startLsn];
          const stopLsn = metadata[BACKUP_HISTORY_METADATA.stopLsn];
          const historyTimeline = Number(metadata[BACKUP_HISTORY_METADATA.timeline]);
          if (metadata[BACKUP_HISTORY_METADATA.label] === undefined) withoutMetadata = object.key;
          if (metadata[BACKUP_HISTORY_METADATA.label] !== label) continue;
          if (!startLsn || !stopLsn || !Number.isSafeInteger(historyTimeline)) break;
          return { startLsn, stopLsn, timeline: historyTimeline };
        }
      }
    }
    if (Date.now() >= deadline) {
      const hint = withoutMetadata
        ? ` (${withoutMetadata} carries no start/stop metadata: the server's archive_command runs an older pms-backup wal-push; upgrade it)`
        : '';
      throw new PmsError(
        'PMS_ERR_WAL_TIMEOUT',
        `the backup history file of ${label}, which records where this base backup starts and stops, did not reach ${storage.location} within ${timeoutSeconds} s${hint}: check that archive_command is 'pms-backup wal-push %p' with the same BACKUP_REPOSITORY and look for archive failures in pg_stat_archiver; the backup was discarded`,
        { details: { label } },
      );
    }
    await sleep(delay, undefined, { signal });
  }
}

/**
 * PostgreSQL already waited for archive_command to succeed on the stop segment; this checks the
 * segment really is in *this* repository (archive_command could point elsewhere).
 */
async function waitForArchivedSegment(storage: Storage, timeline: number, name: string, timeoutSeconds: number, signal: AbortSignal): Promise<void> {
  const key = walObjectKey({ kind: 'segment', name, timeline, segment: 0 });
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (let delay = 200; ; delay = Math.min(delay * 2, 5000)) {
    if ((await storage.head(key)) !== undefined) return;
    if (Date.now() >= deadline) {
      throw new PmsError(
        'PMS_ERR_WAL_TIMEOUT',
        `WAL segment ${name}, which this base backup needs, did not reach ${storage.location} within ${timeoutSeconds} s: check that archive_command is 'pms-backup wal-push %p' with the same BACKUP_REPOSITORY and look for archive failures in pg_stat_archiver; the backup was discarded`,
        { details: { segment: name, key } },
      );
    }
    await sleep(delay, undefined, { signal });
  }
}

