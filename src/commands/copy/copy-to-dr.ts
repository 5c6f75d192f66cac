import { createHash } from 'node:crypto';
import type { TrustPolicy } from '../../crypto/signing.js';
import { listBackups } from '../../repository/backup-catalog.js';
import { backupPrefix, manifestKey } from '../../repository/layout.js';
import { PmsError, isPmsError } from '../../errors/catalogue.js';
import type { ObjectInfo, Storage } from '../../storage/storage.js';
import { ByteMeter } from '../../streams/byte-meter.js';
import { WAL_PREFIX, walFileOfKey } from '../../repository/wal-layout.js';
import { type WalTrustSurvey, checkWalObject, surveyWalTrust } from '../../repository/wal-object-signature.js';

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
  /** WAL objects not carried to DR: no trusted sealed signature, or bytes that differ from the sealed ones. */
  readonly walRefused: { readonly key: string; readonly reason: string }[];
  /** WAL objects copied although unverifiable without the key: archived before wal-push sealed objects. */
  readonly walLegacyCopied: number;
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
async function copyObject(
  from: Storage,
  to: Storage,
  key: string,
  expected?: { sha256: string; bytes: number },
  checked?: ObjectInfo,
): Promise<number> {
  // The metadata copied is the one that was checked (a WAL object's seal), not a later HEAD's.
  const info = checked ?? (await from.head(key));
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
      { details: { key, mismatch: 'expected' } },
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
 * Copies every complete backup and every WAL file that the DR repository lacks. A WAL object is
 * carried only when its sealed signature verifies and its bytes are the sealed ones, or when it
 * is legacy (unsigned, archived before sealing began: copied and counted, never proved); the
 * rest is refused and reported. Safe to re-run
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
  let walLegacyCopied = 0;
  const walRefused: { key: string; reason: string }[] = [];
  const present = new Map<string, number>();
  for await (const object of to.list(WAL_PREFIX)) present.set(object.key, object.bytes);
  // Needed only to judge an unsigned object (legacy or planted): surveyed once, on the first one.
  let survey: WalTrustSurvey | undefined;
  for await (const object of from.list(WAL_PREFIX)) {
    if (present.get(object.key) === object.bytes) {
      walSkipped += 1;
      continue;
    }
    onProgress?.({ copied, skipped, bytes, current: object.key });
    if (walFileOfKey(object.key) === undefined) {
      // wal/system.json and its signatures: records their readers prove themselves.
      bytes += await copyObject(from, to, object.key);
      walCopied += 1;
      continue;
    }
    const info = await from.head(object.key);
    if (info === undefined) continue; // pruned meanwhile
    const verdict = await checkWalObject(info, trust.trusted);
    if (verdict.status === 'untrusted') {
      walRefused.push({ key: object.key, reason: verdict.reason });
      continue;
    }
    if (verdict.status === 'unsigned') {
      survey ??= await surveyWalTrust(from, trust.trusted);
      const refusal = survey.untrusted.get(object.key);
      if (refusal !== undefined || !survey.legacy.has(object.key)) {
        walRefused.push({ key: object.key, reason: refusal?.reason ?? `${object.key} is not trusted: it carries no sealed signature` });
        continue;
      }
      walLegacyCopied += 1;
    }
    try {
      bytes += await copyObject(from, to, object.key, verdict.status === 'trusted' ? verdict.expected : undefined, info);
    } catch (error) {
      // Sealed for other bytes than these: replaced after wal-push stored it.
      if (!isPmsError(error, 'PMS_ERR_INTEGRITY') || error.details?.['mismatch'] !== 'expected') throw error;
      walRefused.push({ key: object.key, reason: `${object.key} is not trusted: its bytes are not the ones its sealed signature names` });
      continue;
    }
    walCopied += 1;
  }
  return { backupsCopied, backupsSkipped, walCopied, walSkipped, walRefused, walLegacyCopied, bytes };
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
