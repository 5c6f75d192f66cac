import { hostname, userInfo } from 'node:os';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type LogicalManifest, logicalManifestSchema } from '../catalog/manifest.js';
import { logicalDumpKey, manifestKey, newBackupId } from '../catalog/layout.js';
import { startPipedCompressor } from '../compression/zstd.js';
import type { BackupConfig } from '../config/config.js';
import type { RecipientSet } from '../crypto/keys.js';
import { encryptStream } from '../crypto/stream-cipher.js';
import { PmsError, isPmsError } from '../errors/catalogue.js';
import { exportSnapshot } from '../postgres/dump-snapshot.js';
import { pgDumpVersion, startLogicalDump } from '../postgres/logical-dump.js';
import type { Storage } from '../storage/storage.js';
import { ByteMeter, EndGate } from '../streams/byte-meter.js';
import { sampleBytesWritten } from '../streams/process-io.js';

export interface BackupProgress {
  readonly phase: 'dumping' | 'committing';
  readonly plainBytes: number;
  readonly storedBytes: number;
}

export interface CreateLogicalBackupOptions {
  readonly config: BackupConfig;
  readonly storage: Storage;
  readonly recipients: RecipientSet;
  readonly zstdLevel?: number;
  readonly onProgress?: (progress: BackupProgress) => void;
  readonly signal?: AbortSignal;
  readonly now?: () => Date;
}

/**
 * pg_dump → zstd → OpenPGP → repository, streamed end to end with backpressure: no plaintext
 * touches disk and memory stays flat. The manifest is written only after every stage succeeded,
 * so an interrupted backup is visibly incomplete and never restorable.
 */
export async function createLogicalBackup(options: CreateLogicalBackupOptions): Promise<LogicalManifest> {
  const { config, storage, recipients } = options;
  const now = options.now ?? (() => new Date());
  const startedAt = now();
  const id = newBackupId(startedAt);
  const objectKey = logicalDumpKey(id);
  // Level 1, not zstd's default 3: on the 410 MB benchmark dump it needs half the CPU (0.9 s vs
  // 2.1 s with -T2) and is even smaller (122 MB vs 137 MB); on 2 cores every CPU-second counts
  // because pg_dump's server backend, pg_dump, zstd and Node all share them (docs/performance.md).
  const level = options.zstdLevel ?? 1;
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });

  // Both before pg_dump starts; in parallel because start-up latency is most of a small backup.
  const [versionOutcome, snapshotOutcome] = await Promise.allSettled([pgDumpVersion(), exportSnapshot(config.postgres)]);
  if (snapshotOutcome.status === 'rejected') throw snapshotOutcome.reason;
  const snapshot = snapshotOutcome.value;
  if (versionOutcome.status === 'rejected') {
    await snapshot.release();
    throw versionOutcome.reason;
  }
  const dumpVersion = versionOutcome.value;
  let objectWritten = false;
  try {
    const dump = startLogicalDump(config.postgres, snapshot.snapshotId, abort.signal);
    // pg_dump's stdout goes straight into zstd (no copy through Node); zstd reports the exact
    // plain size, and its compressed count must equal what we received.
    const zstd = startPipedCompressor(dump.child.stdout!, { level, signal: abort.signal });
    const compressed = new ByteMeter();
    let dumpedSoFar = 0; // progress only
    let plainBytes: number | undefined; // exact, from zstd, once it has exited 0
    const stopSampling = sampleBytesWritten(dump.child.pid, (bytes) => (dumpedSoFar = bytes));
    const stored = new ByteMeter({
      sha256: true,
      onProgress: (bytes) => options.onProgress?.({ phase: 'dumping', plainBytes: dumpedSoFar, storedBytes: bytes }),
    });
    // The object may only be committed once pg_dump and zstd have both exited 0 and zstd's own
    // byte count agrees with ours.
    const gate = new EndGate(async () => {
      await Promise.all([dump.done, zstd.done]);
      const counts = zstd.counts();
      if (counts.compressed !== compressed.bytes) {
        throw new PmsError('PMS_ERR_INTEGRITY', `zstd reports ${counts.compressed} compressed bytes but ${compressed.bytes} arrived`);
      }
      plainBytes = counts.plain;
    });
    const counting = snapshot.countRows(abort.signal);
    const compressedStream = zstd.child.stdout!.pipe(compressed);
    const encrypted = await encryptStream(compressedStream, recipients);
    const body = new PassThrough({ highWaterMark: 1 << 20 });
    const toStorage = pipeline(encrypted, stored, gate, body);
    const put = storage.put(objectKey, body, { signal: abort.signal, metadata: { 'pms-backup-id': id } });
    let firstError: unknown;
    let firstExplained: unknown;
    const failFast = (error: unknown) => {
      firstError ??= error;
      // A typed error explains more than the raw stream error it caused elsewhere (a full
      // disk surfaces as PMS_ERR_REPO_UNAVAILABLE from storage and as a bare ENOSPC upstream).
      if (isPmsError(error) && !isPmsError(error, 'PMS_ERR_ABORTED')) firstExplained ??= error;
      if (!abort.signal.aborted) abort.abort(error);
      body.destroy(error instanceof Error ? error : new Error(String(error)));
      throw error;
    };
    const [, , putResult, tables] = await Promise.all([
      dump.done.catch(failFast),
      zstd.done.catch(failFast),
      put.then((r) => {
        objectWritten = true;
        return r;
      }, failFast),
      counting.catch(failFast),
      toStorage.catch(failFast),
    ]).catch(async (error: unknown) => {
      // Prefer the root cause: once we abort, every stage reports the abort (or a broken pipe)
      // rather than what went wrong. Storage's own typed error comes first: it carries the
      // producers' failures too (the EndGate hands them to the body), and explains a full disk
      // or a dead endpoint that upstream only sees as a raw stream error. Then zstd (it cannot
      // fail because of pg_dump: a short input just ends), then pg_dump.
      const [putOutcome, ...tools] = await Promise.allSettled([put, zstd.done, dump.done]);
      const typed = [putOutcome, ...tools].find(
        (f): f is PromiseRejectedResult => f.status === 'rejected' && isPmsError(f.reason) && !isPmsError(f.reason, 'PMS_ERR_ABORTED'),
      )?.reason;
      throw typed ?? firstExplained ?? firstError ?? error;
    }).finally(stopSampling);
    if (plainBytes === undefined) throw new PmsError('PMS_ERR_INTERNAL', 'the backup stream ended before zstd reported its byte counts');
    options.onProgress?.({ phase: 'committing', plainBytes, storedBytes: stored.bytes });
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
      bytes: { plain: plainBytes, compressed: compressed.bytes, stored: stored.bytes },
      compression: { algorithm: 'zstd', level },
      encryption: { format: 'openpgp', recipients: recipients.descriptions.map((d) => d.fingerprint) },
      keyFingerprints: recipients.descriptions.map((d) => d.fingerprint),
      objects: [{ key: objectKey, bytes: putResult.bytes, sha256: stored.sha256 }],
      tables,
      host: hostname(),
      createdBy: safeUser(),
    });
    if (putResult.bytes !== stored.bytes) {
      throw new PmsError('PMS_ERR_INTEGRITY', `the repository stored ${putResult.bytes} bytes of ${objectKey} but ${stored.bytes} were sent`);
    }
    await storage.putBytes(manifestKey(id), `${JSON.stringify(manifest, null, 2)}\n`, { ifAbsent: true });
    return manifest;
  } catch (error) {
    abort.abort(error);
    if (objectWritten) await storage.delete(objectKey).catch(() => undefined);
    throw wrapFailure(error);
  } finally {
    options.signal?.removeEventListener('abort', onOuterAbort);
    await snapshot.release();
  }
}

function wrapFailure(error: unknown): PmsError {
  if (isPmsError(error)) return error;
  return new PmsError('PMS_ERR_INTERNAL', `backup failed: ${(error as Error).message ?? String(error)}`, { cause: error });
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}
