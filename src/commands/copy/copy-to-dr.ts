import { createHash } from 'node:crypto';
import type { TrustPolicy } from '../../crypto/signing.js';
import { listBackups } from '../../repository/backup-catalog.js';
import { backupPrefix, manifestKey } from '../../repository/layout.js';
import { PmsError } from '../../errors/catalogue.js';
import type { Storage } from '../../storage/storage.js';
import { ByteMeter } from '../../streams/byte-meter.js';
import { WAL_PREFIX } from '../../repository/wal-layout.js';

export interface CopyProgress {
  readonly copied: number;
  readonly skipped: number;
  readonly bytes: number;
  readonly current: string;
}

export interface CopyResult {
  readonly backupsCopied: string[];
  readonly backupsSkipped: number;
  readonly walCopied: number;
  readonly walSkipped: number;
  readonly bytes: number;
}

async function sha256Of(storage: Storage, key: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of await storage.get(key)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * Copies one object with its metadata and proves the copy: the bytes streamed from the source
 * must hash to `expected` (the manifest's sha256) when known, and the copy read back from the
 * destination must hash to the same value.
 */
async function copyObject(from: Storage, to: Storage, key: string, expected?: { sha256: string; bytes: number }): Promise<number> {
  const info = await from.head(key);
  if (!info) throw new PmsError('PMS_ERR_NOT_FOUND', `${key} disappeared from ${from.location} during the copy`);
  const meter = new ByteMeter({ sha256: true });
  const source = await from.get(key);
  source.on('error', (error) => meter.destroy(error));
  await to.put(key, source.pipe(meter), { metadata: info.metadata });
  if (expected && (meter.sha256 !== expected.sha256 || meter.bytes !== expected.bytes)) {
    await to.delete(key).catch(() => undefined);
    throw new PmsError(
      'PMS_ERR_INTEGRITY',
      `${key} in ${from.location} does not match its manifest (sha256 differs): not copied; verify the primary repository`,
    );
  }
  const copy = await sha256Of(to, key);
  if (copy.sha256 !== meter.sha256 || copy.bytes !== meter.bytes) {
    await to.delete(key).catch(() => undefined);
    throw new PmsError(
      'PMS_ERR_INTEGRITY',
      `the copy of ${key} in ${to.location} differs from the source (sha256 mismatch): removed; re-run pms-backup copy`,
    );
  }
  return meter.bytes;
}

/**
 * Copies every complete backup and every WAL file that the DR repository lacks. Safe to re-run
 * (what is there is skipped) and to interrupt (objects are written atomically and a backup's
 * manifest is copied last, so an interrupted backup is incomplete in DR until the next run).
 */
export async function copyToDr(
  from: Storage,
  to: Storage,
  trust: TrustPolicy,
  onProgress?: (p: CopyProgress) => void,
): Promise<CopyResult> {
  let bytes = 0;
  let copied = 0;
  let skipped = 0;
  const backupsCopied: string[] = [];
  let backupsSkipped = 0;
  const entries = (await listBackups(from, trust)).filter((e) => e.status === 'complete' && e.manifest);
  for (const entry of [...entries].reverse()) {
    if (await to.head(manifestKey(entry.id))) {
      backupsSkipped += 1;
      skipped += 1;
      continue;
    }
    const manifest = entry.manifest!;
    const known = new Map(manifest.objects.map((o) => [o.key, o]));
    for await (const object of from.list(backupPrefix(entry.id))) {
      if (object.key === manifestKey(entry.id)) continue;
      onProgress?.({ copied, skipped, bytes, current: object.key });
      bytes += await copyObject(from, to, object.key, known.get(object.key));
    }
    bytes += await copyObject(from, to, manifestKey(entry.id));
    backupsCopied.push(entry.id);
    copied += 1;
  }
  let walCopied = 0;
  let walSkipped = 0;
  const present = new Map<string, number>();
  for await (const object of to.list(WAL_PREFIX)) present.set(object.key, object.bytes);
  for await (const object of from.list(WAL_PREFIX)) {
    if (present.get(object.key) === object.bytes) {
      walSkipped += 1;
      continue;
    }
    onProgress?.({ copied, skipped, bytes, current: object.key });
    bytes += await copyObject(from, to, object.key);
    walCopied += 1;
  }
  return { backupsCopied, backupsSkipped, walCopied, walSkipped, bytes };
}

/**
 * DR lag: how long the oldest complete primary backup missing from DR has existed (0 when DR
 * holds them all). Measured against what matters: a backup that exists only in one region.
 */
export async function measureDrLag(
  from: Storage,
  to: Storage,
  trust: TrustPolicy,
  now = new Date(),
): Promise<{ lagSeconds: number; missing: string[]; newestInDr: string | undefined }> {
  const primary = (await listBackups(from, trust)).filter((e) => e.status === 'complete');
  const dr = new Set((await listBackups(to, trust)).filter((e) => e.status === 'complete').map((e) => e.id));
  const missing = primary.filter((e) => !dr.has(e.id));
  const oldestMissing = missing[missing.length - 1];
  return {
    lagSeconds: oldestMissing ? Math.max(0, (now.getTime() - Date.parse(oldestMissing.createdAt)) / 1000) : 0,
    missing: missing.map((e) => e.id),
    newestInDr: primary.find((e) => dr.has(e.id))?.id,
  };
}
