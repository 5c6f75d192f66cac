import { PmsError, isPmsError } from '../errors/catalogue.js';
import type { Storage } from '../storage/storage.js';
import { BACKUPS_PREFIX, backupIdOfKey, manifestKey, timeOfId } from './layout.js';
import { type Manifest, type ManifestKind, parseManifest } from './manifest.js';

export type BackupStatus = 'complete' | 'incomplete' | 'corrupt';

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
  readonly manifest?: Manifest;
}

/** Every backup in the repository, newest first. A backup without a manifest is incomplete. */
export async function listBackups(storage: Storage): Promise<BackupEntry[]> {
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
        const manifest = await readManifest(storage, id);
        return {
          id,
          kind: manifest.kind,
          createdAt: manifest.startedAt,
          bytes: manifest.bytes.stored,
          status: 'complete',
          ...(manifest.kind === 'logical' ? { tables: manifest.tables.length, database: manifest.database } : {}),
          durationSeconds: manifest.durationSeconds,
          keyFingerprints: manifest.keyFingerprints,
          manifest,
        };
      } catch (error) {
        if (!isPmsError(error, 'PMS_ERR_MANIFEST')) throw error;
        return { id, kind: 'unknown', createdAt, bytes: group.bytes, status: 'corrupt', problem: error.message };
      }
    }),
  );
  return entries.sort((a, b) => (a.createdAt === b.createdAt ? b.id.localeCompare(a.id) : b.createdAt.localeCompare(a.createdAt)));
}

export async function readManifest(storage: Storage, id: string): Promise<Manifest> {
  const key = manifestKey(id);
  const raw = await storage.getBytes(key);
  const manifest = parseManifest(raw, key);
  if (manifest.id !== id)
    throw new PmsError(
      'PMS_ERR_MANIFEST',
      `manifest ${key} names backup ${manifest.id}, not ${id}: the repository was tampered with or mis-copied`,
    );
  return manifest;
}

/** `latest` → newest complete backup of the kind; an id → that backup, which must be complete. */
export async function resolveBackup<K extends ManifestKind>(
  storage: Storage,
  reference: string,
  kind: K,
): Promise<Extract<Manifest, { kind: K }>> {
  const entries = await listBackups(storage);
  if (reference === 'latest') {
    const newest = entries.find((e) => e.status === 'complete' && e.kind === kind);
    if (!newest?.manifest)
      throw new PmsError('PMS_ERR_NOT_FOUND', `no complete ${kind} backup in ${storage.location}: run pms-backup create first`);
    return newest.manifest as Extract<Manifest, { kind: K }>;
  }
  const entry = entries.find((e) => e.id === reference);
  if (!entry) throw new PmsError('PMS_ERR_NOT_FOUND', `backup ${reference} does not exist in ${storage.location}: see pms-backup list`);
  if (entry.status === 'incomplete')
    throw new PmsError(
      'PMS_ERR_INCOMPLETE',
      `backup ${reference} is incomplete (no manifest: it was interrupted or is still running) and cannot be restored`,
    );
  if (entry.status === 'corrupt' || !entry.manifest)
    throw new PmsError('PMS_ERR_MANIFEST', entry.problem ?? `backup ${reference} has an unreadable manifest`);
  if (entry.kind !== kind) throw new PmsError('PMS_ERR_USAGE', `backup ${reference} is a ${entry.kind} backup, not ${kind}`);
  return entry.manifest as Extract<Manifest, { kind: K }>;
}
