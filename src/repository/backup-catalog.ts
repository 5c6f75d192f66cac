import { PmsError, isPmsError } from '../errors/catalogue.js';
import type { TrustPolicy } from '../crypto/signing.js';
import type { Storage } from '../storage/storage.js';
import { BACKUPS_PREFIX, backupIdOfKey, manifestKey, timeOfId } from './layout.js';
import { type Manifest, type ManifestKind, parseManifest } from './manifest.js';
import { readSignedRecord } from './signed-record.js';
import { type VerificationSummary, newestVerifications } from './verification-record.js';

/**
 * complete: a manifest signed by a trusted key; untrusted: a manifest whose signature is
 * missing, bad or not ours (never restored, never counted as the newest, alerted on).
 */
export type BackupStatus = 'complete' | 'incomplete' | 'corrupt' | 'untrusted';

export interface BackupEntry {
  readonly id: string;
  readonly kind: string;
  readonly createdAt: string;
  /** Stored bytes: from the manifest when complete, else what lies in the repository. */
  readonly bytes: number;
  readonly status: BackupStatus;
  readonly database?: string;
  /** Logical backups: number of tables dumped. */
  readonly tables?: number;
  readonly durationSeconds?: number;
  readonly keyFingerprints?: readonly string[];
  readonly problem?: string;
  /** Set for complete backups, and for untrusted ones only when their manifest is merely unsigned and parses. */
  readonly manifest?: Manifest;
  /** The trusted key that signed the manifest (complete backups). */
  readonly signer?: string;
  /** Untrusted because the manifest carries no signature at all (made before signing): --allow-unsigned may restore it. */
  readonly unsigned?: boolean;
  /** The newest trusted verification of this backup (listBackups with verifications only). */
  readonly verification?: VerificationSummary;
}

/** A complete backup whose newest verification failed: shown as `failed`, skipped by `latest`. */
export function failedVerification(entry: BackupEntry): boolean {
  return entry.status === 'complete' && entry.verification?.ok === false;
}

/** listBackups, each entry with its newest trusted verification (list, latest). */
export async function listBackupsWithVerifications(storage: Storage, trust: CatalogTrust): Promise<BackupEntry[]> {
  const [entries, verifications] = await Promise.all([listBackups(storage, trust), newestVerifications(storage, trust)]);
  return entries.map((entry) => {
    const verification = verifications.get(entry.id);
    return verification ? { ...entry, verification } : entry;
  });
}

/** The newest complete backup of a kind that has not failed its newest verification, if any. */
export function newestGood(entries: readonly BackupEntry[], kind: string, except?: string): BackupEntry | undefined {
  return entries.find((e) => e.status === 'complete' && e.kind === kind && e.id !== except && !failedVerification(e));
}

/** What a reader accepts (allowUnsigned matters only to resolveBackup: a listing shows everything). */
export type CatalogTrust = TrustPolicy;

/** Every backup in the repository, newest first. A backup without a manifest is incomplete. */
export async function listBackups(storage: Storage, trust: CatalogTrust): Promise<BackupEntry[]> {
  const groups = new Map<string, { bytes: number; hasManifest: boolean; newest: Date }>();
  for await (const object of storage.list(BACKUPS_PREFIX)) {
    const id = backupIdOfKey(object.key);
    if (id === undefined) continue;
    const group = groups.get(id) ?? { bytes: 0, hasManifest: false, newest: object.modifiedAt };
    group.bytes += object.bytes;
    if (object.key === manifestKey(id)) group.hasManifest = true;
    if (object.modifiedAt > group.newest) group.newest = object.modifiedAt;
    groups.set(id, group);
  }
  const entries = await Promise.all(
    [...groups.entries()].map(async ([id, group]): Promise<BackupEntry> => {
      const createdAt = timeOfId(id).toISOString();
      if (!group.hasManifest) return { id, kind: 'unknown', createdAt, bytes: group.bytes, status: 'incomplete' };
      try {
        const { manifest, signer } = await readManifest(storage, id, trust, { allowUnsigned: true });
        const summary = {
          id,
          kind: manifest.kind,
          createdAt: manifest.startedAt,
          bytes: manifest.bytes.stored,
          ...(manifest.kind === 'logical' ? { tables: manifest.tables.length, database: manifest.database } : {}),
          durationSeconds: manifest.durationSeconds,
          keyFingerprints: manifest.keyFingerprints,
          manifest,
        };
        if (signer === undefined) {
          return { ...summary, status: 'untrusted', unsigned: true, problem: `${manifestKey(id)} is not signed` };
        }
        return { ...summary, status: 'complete', signer };
      } catch (error) {
        if (isPmsError(error, 'PMS_ERR_UNTRUSTED')) {
          return { id, kind: 'unknown', createdAt, bytes: group.bytes, status: 'untrusted', problem: error.message };
        }
        if (!isPmsError(error, 'PMS_ERR_MANIFEST')) throw error;
        return { id, kind: 'unknown', createdAt, bytes: group.bytes, status: 'corrupt', problem: error.message };
      }
    }),
  );
  return entries.sort((a, b) => (a.createdAt === b.createdAt ? b.id.localeCompare(a.id) : b.createdAt.localeCompare(a.createdAt)));
}

/**
 * The manifest of `id`, proved: signed by a trusted key for this very key, and naming this id.
 * With allowUnsigned an unsigned manifest is returned with signer undefined (never a badly
 * signed one).
 */
export async function readManifest(
  storage: Storage,
  id: string,
  trust: CatalogTrust,
  options: { allowUnsigned?: boolean } = {},
): Promise<{ manifest: Manifest; signer: string | undefined }> {
  const key = manifestKey(id);
  const record = await readSignedRecord(storage, key, trust.trusted, options);
  const manifest = parseManifest(record.bytes, key);
  if (manifest.id !== id)
    throw new PmsError(
      'PMS_ERR_MANIFEST',
      `manifest ${key} names backup ${manifest.id}, not ${id}: the repository was tampered with or mis-copied`,
    );
  return { manifest, signer: record.signature?.signer };
}

/** `latest` → newest complete backup of the kind; an id → that backup, which must be complete. */
export async function resolveBackup<K extends ManifestKind>(
  storage: Storage,
  reference: string,
  kind: K,
  trust: CatalogTrust,
  options: { onNote?: (note: string) => void } = {},
): Promise<Extract<Manifest, { kind: K }>> {
  const entries = reference === 'latest' ? await listBackupsWithVerifications(storage, trust) : await listBackups(storage, trust);
  if (reference === 'latest') {
    const skipped = [];
    for (const entry of entries) {
      if (entry.status !== 'complete' || entry.kind !== kind) continue;
      if (!failedVerification(entry)) break;
      skipped.push(entry);
    }
    for (const entry of skipped)
      options.onNote?.(
        `latest skips backup ${entry.id}: its verification of ${entry.verification?.verifiedAt} failed (${entry.verification?.failed.join(', ')})`,
      );
    const newest = newestGood(entries, kind);
    if (!newest?.manifest)
      throw new PmsError(
        'PMS_ERR_NOT_FOUND',
        skipped.length > 0
          ? `no ${kind} backup in ${storage.location} that has not failed verification (${skipped.map((e) => e.id).join(', ')} failed): see pms-backup list`
          : `no complete, trusted ${kind} backup in ${storage.location}: run pms-backup create first`,
      );
    return newest.manifest as Extract<Manifest, { kind: K }>;
  }
  const entry = entries.find((e) => e.id === reference);
  if (!entry) throw new PmsError('PMS_ERR_NOT_FOUND', `backup ${reference} does not exist in ${storage.location}: see pms-backup list`);
  if (entry.status === 'incomplete')
    throw new PmsError(
      'PMS_ERR_INCOMPLETE',
      `backup ${reference} is incomplete (no manifest: it was interrupted or is still running) and cannot be restored`,
    );
  if (entry.status === 'untrusted' && !(entry.unsigned && trust.allowUnsigned && entry.manifest)) {
    throw new PmsError(
      'PMS_ERR_UNTRUSTED',
      `${entry.problem ?? `backup ${reference} is not trusted`}${entry.unsigned ? ' (a backup made before signing: --allow-unsigned restores it, audited)' : ''}`,
      { details: { backupId: reference } },
    );
  }
  if (entry.status === 'corrupt' || !entry.manifest)
    throw new PmsError('PMS_ERR_MANIFEST', entry.problem ?? `backup ${reference} has an unreadable manifest`);
  if (entry.kind !== kind) throw new PmsError('PMS_ERR_USAGE', `backup ${reference} is a ${entry.kind} backup, not ${kind}`);
  return entry.manifest as Extract<Manifest, { kind: K }>;
}
