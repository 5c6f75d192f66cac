import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { baseBackupKey, baseBackupManifestKey, manifestKey, newBackupId } from '../../repository/layout.js';
import { type BaseManifest, baseManifestSchema } from '../../repository/manifest.js';
import type { BackupConfig } from '../../config/config.js';
import type { RecipientSet } from '../../crypto/keys.js';
import type { SigningKey, TrustPolicy } from '../../crypto/signing.js';
import { putSignedRecord } from '../../repository/signed-record.js';
import { PmsError, isPmsError } from '../../errors/catalogue.js';
import { storeEncrypted } from '../../pipeline/store-encrypted.js';
import { usingClient } from '../../postgres/connect.js';
import { chooseBackupSource } from '../../postgres/backup-source.js';
import { endpointsOf } from '../../config/postgres-config.js';
import { SQLSTATE } from '../../postgres/sqlstate.js';
import { askPrimaryToSwitch } from './primary-switch.js';
import type { Storage } from '../../storage/storage.js';
import { segmentBeforeLsn, segmentName, segmentOfLsn } from '../../wal/wal-file-name.js';
import { readArchiveIdentity, systemMismatch } from '../../repository/wal-identity.js';
import { walObjectKey } from '../../repository/wal-layout.js';
import { startBaseBackupStream } from '../../postgres/replication-base-backup.js';
import { osUserName } from '../../process/os-user.js';
import { linkAbort } from '../../process/linked-abort.js';

export interface BaseBackupProgress {
  readonly phase: 'copying' | 'waiting-for-wal' | 'committing';
  readonly plainBytes: number;
  readonly storedBytes: number;
}

export interface CreateBaseBackupOptions {
  readonly config: BackupConfig;
  readonly storage: Storage;
  /**
   * The keys may still be loading: they are awaited only once the server has begun the backup,
   * so unlocking them overlaps with its checkpoint (a failure still ends the backup).
   */
  readonly recipients: RecipientSet | Promise<RecipientSet>;
  /** Signs every object and the manifest (BACKUP_SIGNING_KEY_FILE). */
  readonly signer: SigningKey | Promise<SigningKey>;
  /** Whose signature wal/system.json must carry. */
  readonly trust: TrustPolicy | Promise<TrustPolicy>;
  /** zstd level the server compresses with (default 1). */
  readonly zstdLevel?: number;
  /** zstd worker threads on the database server (default: BACKUP_BASE_ZSTD_WORKERS, 2). */
  readonly serverWorkers?: number;
  /** How long to wait for the stop segment to appear in the archive (default 300 s). */
  readonly walTimeoutSeconds?: number;
  readonly onProgress?: (progress: BaseBackupProgress) => void;
  readonly signal?: AbortSignal;
  readonly now?: () => Date;
}

/**
 * BASE_BACKUP (tar, no WAL, compressed with zstd by the server) → OpenPGP → repository, streamed
 * with backpressure like the logical backup; the server's backup_manifest becomes a second
 * object. The manifest, the commit record, is written only once the WAL up to the stop segment
 * is in the repository: a base backup without its WAL restores nothing.
 */
export async function createBaseBackup(options: CreateBaseBackupOptions): Promise<BaseManifest> {
  const { config, storage } = options;
  const now = options.now ?? (() => new Date());
  const startedAt = now();
  const id = newBackupId(startedAt);
  const objectKey = baseBackupKey(id);
  // Level 1: on the 1.9 GB pgbench cluster zstd -1 needs 1.46 CPU-s against 2.03 for -3 and
  // stores 83.6 MB against 83.8 MB (docs/performance.md).
  const level = options.zstdLevel ?? 1;

  // BACKUP_FROM_STANDBY picks the server once; every connection of this backup goes to it.
  const source =
    endpointsOf(config.postgres).length > 1 || config.fromStandby !== 'no'
      ? (await chooseBackupSource(config.postgres, config.fromStandby)).config
      : config.postgres;
  const where = `${source.host}:${source.port}`;
  // The archive's identity is read while the server answers: two round trips side by side.
  const archiveIdentity = Promise.resolve(options.trust).then((trust) => readArchiveIdentity(storage, trust));
  archiveIdentity.catch(() => undefined);
  const server = await usingClient(source, async (client) => {
    const result = await client.query<{
      system_identifier: string;
      server_version: string;
      server_version_num: string;
      archive_mode: string;
      in_recovery: boolean;
    }>(
      `SELECT (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
              current_setting('server_version') AS server_version, current_setting('server_version_num') AS server_version_num,
              current_setting('archive_mode') AS archive_mode, pg_is_in_recovery() AS in_recovery`,
    );
    return result.rows[0];
  });
  if (!server) throw new PmsError('PMS_ERR_DB_QUERY', 'could not read the server identity');
  if (server.archive_mode === 'off') {
    throw new PmsError(
      'PMS_ERR_CONFIG',
      `archive_mode is off on ${where}: a base backup is useless without archived WAL; set archive_mode = on and archive_command = 'pms-backup wal-push %p' (docs/pitr.md)`,
    );
  }
  if (server.in_recovery && config.fromStandby === 'no') {
    throw new PmsError(
      'PMS_ERR_CONFIG',
      `${where} is a standby (in recovery) and BACKUP_FROM_STANDBY=no: point POSTGRES_HOST at the primary, or list the cluster's servers with BACKUP_FROM_STANDBY=prefer (docs/ha.md)`,
    );
  }
  const fromStandby = server.in_recovery;
  if (Number(server.server_version_num) < 150000) {
    throw new PmsError(
      'PMS_ERR_CONFIG',
      `base-backup needs PostgreSQL 15 or later (server-side compression in BASE_BACKUP); ${where} runs ${server.server_version}`,
    );
  }
  const archiveSystem = await archiveIdentity;
  if (archiveSystem !== undefined && archiveSystem !== server.system_identifier)
    throw systemMismatch(storage, archiveSystem, server.system_identifier);

  // Our own abort (stops the backup on the first failure) that also follows the caller's.
  const link = linkAbort(options.signal);
  const abort = link.controller;
  const written: string[] = [];
  try {
    const backup = await startBaseBackupStream(source, {
      label: `pms-base-${id}`,
      level,
      workers: options.serverWorkers ?? config.operations.baseBackupZstdWorkers,
      signal: abort.signal,
    });
    const [recipients, signer] = await Promise.all([options.recipients, options.signer]);
    const tar = await storeEncrypted({
      source: backup.archive,
      alongside: [backup.done],
      storage,
      key: objectKey,
      recipients,
      signer,
      abort,
      metadata: { 'pms-backup-id': id },
      onProgress: (storedBytes) => options.onProgress?.({ phase: 'copying', plainBytes: backup.plainBytes(), storedBytes }),
      onStored: () => written.push(objectKey),
    });
    const finishedAt = now();
    const points = await backup.done;
    if (fromStandby) await confirmStillStandby(source, where, points.start.timeline, points.stop.timeline);
    const plainBytes = points.plainBytes;
    // The server's backup_manifest (a checksum per file), for pg_verifybackup on a restored copy.
    const manifestObjectKey = baseBackupManifestKey(id);
    const serverManifest = await storeEncrypted({
      source: Readable.from([points.backupManifest]),
      storage,
      key: manifestObjectKey,
      recipients,
      signer,
      abort,
      metadata: { 'pms-backup-id': id },
      onStored: () => written.push(manifestObjectKey),
    });
    const timeline = points.stop.timeline;
    const startWalSegment = segmentName(points.start.timeline, segmentOfLsn(points.start.lsn));
    const stopWalSegment = segmentName(timeline, segmentBeforeLsn(points.stop.lsn));
    options.onProgress?.({ phase: 'waiting-for-wal', plainBytes, storedBytes: tar.storedBytes });
    // A standby cannot switch WAL: the stop segment is complete (and archived, by the standby
    // with archive_mode = always or by the primary) only once the primary moves past it.
    const switched = fromStandby ? await askPrimaryToSwitch(config.postgres, timeline, segmentBeforeLsn(points.stop.lsn)) : undefined;
    await waitForArchivedSegment(storage, timeline, stopWalSegment, options.walTimeoutSeconds ?? 300, abort.signal, switched);
    options.onProgress?.({ phase: 'committing', plainBytes, storedBytes: tar.storedBytes });
    const manifest: BaseManifest = baseManifestSchema.parse({
      formatVersion: 1,
      id,
      kind: 'base',
      systemIdentifier: server.system_identifier,
      timeline,
      startLsn: points.start.lsn,
      stopLsn: points.stop.lsn,
      startWalSegment,
      stopWalSegment,
      serverVersion: server.server_version,
      serverVersionNum: Number(server.server_version_num),
      startedAt: startedAt.toISOString(),
      // The moment the server reported the backup done, i.e. after its stop point: the earliest
      // time a point-in-time restore from this backup can target.
      finishedAt: finishedAt.toISOString(),
      durationSeconds: (finishedAt.getTime() - startedAt.getTime()) / 1000,
      bytes: { plain: plainBytes, compressed: tar.sourceBytes, stored: tar.storedBytes + serverManifest.storedBytes },
      compression: { algorithm: 'zstd', level },
      encryption: { format: 'openpgp', recipients: recipients.descriptions.map((d) => d.fingerprint) },
      keyFingerprints: recipients.descriptions.map((d) => d.fingerprint),
      signedBy: signer.description.fingerprint,
      objects: [
        { key: objectKey, bytes: tar.storedBytes, sha256: tar.sha256 },
        { key: manifestObjectKey, bytes: serverManifest.storedBytes, sha256: serverManifest.sha256 },
      ],
      host: hostname(),
      createdBy: osUserName(),
    });
    await putSignedRecord(storage, manifestKey(id), `${JSON.stringify(manifest, null, 2)}\n`, signer, { ifAbsent: true });
    return manifest;
  } catch (error) {
    abort.abort(error);
    for (const key of written) await storage.delete(key).catch(() => undefined);
    // PostgreSQL ends a standby's backup with object_not_in_prerequisite_state when the standby
    // was promoted while it ran ("the backup being taken is corrupt"); it reaches us through the
    // archive stream or the result, whichever fails first.
    if (fromStandby && isPmsError(error) && error.details?.['sqlstate'] === SQLSTATE.objectNotInPrerequisiteState)
      throw promoted(where, error);
    if (isPmsError(error)) throw error;
    // A timer or stream stopped by our abort: the reason it was aborted is the story.
    if (isPmsError(abort.signal.reason) && (error as Error).name === 'AbortError') throw abort.signal.reason;
    throw new PmsError('PMS_ERR_INTERNAL', `base backup failed: ${(error as Error).message ?? String(error)}`, { cause: error });
  } finally {
    link.unlink();
  }
}

function promoted(where: string, cause?: unknown): PmsError {
  return new PmsError(
    'PMS_ERR_STANDBY_PROMOTED',
    `the standby ${where} this base backup read was promoted (a failover) before the backup ended: the copy is not consistent and was discarded; run base-backup again once the cluster has a leader and a sync standby`,
    { cause },
  );
}

/**
 * After BASE_BACKUP on a standby: still a standby, and on the timeline it started on. A promotion
 * after the stop point leaves the stop segment of the old timeline only as a .partial file, and a
 * timeline switch inside the backup means WAL of two histories: both are refused, not guessed at.
 */
async function confirmStillStandby(
  source: BackupConfig['postgres'],
  where: string,
  startTimeline: number,
  stopTimeline: number,
): Promise<void> {
  if (startTimeline !== stopTimeline) throw promoted(where);
  const inRecovery = await usingClient(source, async (client) => {
    const { rows } = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    return rows[0]?.r === true;
  });
  if (!inRecovery) throw promoted(where);
}

/**
 * Waits until the stop segment is in *this* repository (BASE_BACKUP ran with WAIT false, and
 * archive_command could point elsewhere anyway). The server switched to a new segment when the
 * backup stopped, so the archiver is already pushing it: look often at first (a head request is
 * cheap), then back off for a slow or failing archiver.
 */
async function waitForArchivedSegment(
  storage: Storage,
  timeline: number,
  name: string,
  timeoutSeconds: number,
  signal: AbortSignal,
  standbyNote?: string,
): Promise<void> {
  const key = walObjectKey({ kind: 'segment', name, timeline, segment: 0 });
  const started = Date.now();
  const deadline = started + timeoutSeconds * 1000;
  for (;;) {
    if ((await storage.head(key)) !== undefined) return;
    if (Date.now() >= deadline) {
      throw new PmsError(
        'PMS_ERR_WAL_TIMEOUT',
        `WAL segment ${name}, which this base backup needs, did not reach ${storage.location} within ${timeoutSeconds} s: check that archive_command is 'pms-backup wal-push %p' with the same BACKUP_REPOSITORY and look for archive failures in pg_stat_archiver${standbyNote ? ` (the backup read a standby: ${standbyNote})` : ''}; the backup was discarded`,
        { details: { segment: name, key } },
      );
    }
    const waited = Date.now() - started;
    await sleep(waited < 10_000 ? 50 : Math.min(5000, waited / 10), undefined, { signal });
  }
}
