import { hostname } from 'node:os';
import { type LogicalManifest, logicalManifestSchema } from '../../repository/manifest.js';
import { logicalDumpKey, manifestKey, newBackupId } from '../../repository/layout.js';
import type { BackupConfig } from '../../config/config.js';
import { endpointsOf } from '../../config/postgres-config.js';
import type { RecipientSet } from '../../crypto/keys.js';
import type { SigningKey } from '../../crypto/signing.js';
import { putSignedRecord } from '../../repository/signed-record.js';
import { PmsError, isPmsError } from '../../errors/catalogue.js';
import { chooseBackupSource } from '../../postgres/backup-source.js';
import { exportSnapshot } from '../../postgres/dump-snapshot.js';
import { pgDumpVersion, startLogicalDump } from '../../postgres/logical-dump.js';
import type { ServerRole } from '../../postgres/session-target.js';
import type { Storage } from '../../storage/storage.js';
import { storeCompressedEncrypted } from '../../pipeline/store-encrypted.js';
import { osUserName } from '../../process/os-user.js';
import { linkAbort } from '../../process/linked-abort.js';

export interface BackupProgress {
  readonly phase: 'dumping' | 'committing';
  readonly plainBytes: number;
  readonly storedBytes: number;
}

export interface BackupServer {
  readonly server: string;
  readonly role?: ServerRole;
}

export interface CreateLogicalBackupOptions {
  readonly config: BackupConfig;
  readonly storage: Storage;
  readonly recipients: RecipientSet;
  /** Signs every object and the manifest (BACKUP_SIGNING_KEY_FILE). */
  readonly signer: SigningKey;
  readonly zstdLevel?: number;
  readonly onProgress?: (progress: BackupProgress) => void;
  /**
   * The server the backup reads, once chosen: `host:port`, and with a POSTGRES_HOST list or
   * BACKUP_FROM_STANDBY its role (the manifest's `host` is where pms-backup ran, not this).
   */
  readonly onSource?: (source: BackupServer) => void;
  readonly signal?: AbortSignal;
  readonly now?: () => Date;
}

/**
 * pg_dump → zstd → OpenPGP → repository, streamed end to end with backpressure: no plaintext
 * touches disk and memory stays flat. The manifest is written only after every stage succeeded,
 * so an interrupted backup is visibly incomplete and never restorable.
 */
export async function createLogicalBackup(options: CreateLogicalBackupOptions): Promise<LogicalManifest> {
  const { config, storage, recipients, signer } = options;
  const now = options.now ?? (() => new Date());
  const startedAt = now();
  const id = newBackupId(startedAt);
  const objectKey = logicalDumpKey(id);
  // Level 1, not zstd's default 3: on the 410 MB benchmark dump it needs half the CPU (0.9 s vs
  // 2.1 s with -T2) and is even smaller (122 MB vs 137 MB); on 2 cores every CPU-second counts
  // because pg_dump's server backend, pg_dump, zstd and Node all share them (docs/performance.md).
  const level = options.zstdLevel ?? 1;

  // The snapshot and pg_dump must meet on one server: with a POSTGRES_HOST list, chosen once here.
  const chosen =
    endpointsOf(config.postgres).length > 1 || config.fromStandby !== 'no'
      ? await chooseBackupSource(config.postgres, config.fromStandby)
      : undefined;
  const source = chosen?.config ?? config.postgres;
  options.onSource?.({ server: `${source.host}:${source.port}`, ...(chosen ? { role: chosen.role } : {}) });
  // Both before pg_dump starts; in parallel because start-up latency is most of a small backup.
  const [versionOutcome, snapshotOutcome] = await Promise.allSettled([pgDumpVersion(), exportSnapshot(source)]);
  if (snapshotOutcome.status === 'rejected') throw snapshotOutcome.reason;
  const snapshot = snapshotOutcome.value;
  if (versionOutcome.status === 'rejected') {
    await snapshot.release();
    throw versionOutcome.reason;
  }
  const dumpVersion = versionOutcome.value;
  // Our own abort (stops the programs on the first failure) that also follows the caller's.
  const link = linkAbort(options.signal);
  const abort = link.controller;
  let objectWritten = false;
  try {
    const dump = startLogicalDump(source, snapshot.snapshotId, abort.signal);
    let tables: Awaited<ReturnType<typeof snapshot.countRows>> = [];
    const result = await storeCompressedEncrypted({
      producer: dump,
      storage,
      key: objectKey,
      recipients,
      signer,
      level,
      abort,
      metadata: { 'pms-backup-id': id },
      // The manifest's row counts come from the same snapshot as the dump, counted meanwhile.
      alongside: snapshot.countRows(abort.signal).then((counted) => {
        tables = counted;
      }),
      onProgress: (plainSoFar, storedBytes) => options.onProgress?.({ phase: 'dumping', plainBytes: plainSoFar, storedBytes }),
      onStored: () => {
        objectWritten = true;
      },
    });
    const { plainBytes } = result;
    options.onProgress?.({ phase: 'committing', plainBytes, storedBytes: result.storedBytes });
    const finishedAt = now();
    const manifest: LogicalManifest = logicalManifestSchema.parse({
      formatVersion: 1,
      id,
      kind: 'logical',
      database: config.postgres.database,
      serverVersion: snapshot.serverVersion,
      serverVersionNum: snapshot.serverVersionNum,
      pgDumpVersion: dumpVersion,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationSeconds: (finishedAt.getTime() - startedAt.getTime()) / 1000,
      bytes: { plain: plainBytes, compressed: result.compressedBytes, stored: result.storedBytes },
      compression: { algorithm: 'zstd', level },
      encryption: { format: 'openpgp', recipients: recipients.descriptions.map((d) => d.fingerprint) },
      keyFingerprints: recipients.descriptions.map((d) => d.fingerprint),
      signedBy: signer.description.fingerprint,
      objects: [{ key: objectKey, bytes: result.storedBytes, sha256: result.sha256 }],
      tables,
      host: hostname(),
      createdBy: osUserName(),
    });
    await putSignedRecord(storage, manifestKey(id), `${JSON.stringify(manifest, null, 2)}\n`, signer, { ifAbsent: true });
    return manifest;
  } catch (error) {
    abort.abort(error);
    if (objectWritten) await storage.delete(objectKey).catch(() => undefined);
    throw wrapFailure(error);
  } finally {
    link.unlink();
    await snapshot.release();
  }
}

function wrapFailure(error: unknown): PmsError {
  if (isPmsError(error)) return error;
  return new PmsError('PMS_ERR_INTERNAL', `backup failed: ${(error as Error).message ?? String(error)}`, { cause: error });
}
