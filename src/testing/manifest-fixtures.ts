/**
 * Manifests as the backup commands write them, for fast tests of the modules that read a
 * repository (catalog, PITR choice, prune, WAL summary) without running PostgreSQL. Every
 * manifest is checked by the real schema, so a fixture cannot drift from the format.
 */
import { type BaseManifest, type LogicalManifest, baseManifestSchema, logicalManifestSchema } from '../repository/manifest.js';
import { baseBackupKey, logicalDumpKey, manifestKey } from '../repository/layout.js';
import type { Storage } from '../storage/storage.js';

export const FINGERPRINT = 'A1B2C3D4E5F60718293A4B5C6D7E8F9012345678';
const SHA256 = 'ab'.repeat(32);

/** 20261123T051200Z-3f9a from a time and a suffix. */
export function backupIdAt(iso: string, suffix = '0001'): string {
  return `${iso.replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')}-${suffix}`;
}

const common = (id: string, startedAt: string, finishedAt: string, stored: number) => ({
  formatVersion: 1 as const,
  id,
  serverVersion: '15.18',
  serverVersionNum: 150018,
  startedAt,
  finishedAt,
  durationSeconds: (Date.parse(finishedAt) - Date.parse(startedAt)) / 1000,
  bytes: { plain: stored * 4, compressed: stored, stored },
  compression: { algorithm: 'zstd' as const, level: 3 },
  encryption: { format: 'openpgp' as const, recipients: [FINGERPRINT] },
  keyFingerprints: [FINGERPRINT],
  host: 'db-0',
  createdBy: 'postgres',
});

export function logicalManifest(startedAt: string, fields: Partial<LogicalManifest> = {}): LogicalManifest {
  const id = fields.id ?? backupIdAt(startedAt);
  const finishedAt = new Date(Date.parse(startedAt) + 60_000).toISOString();
  return logicalManifestSchema.parse({
    ...common(id, startedAt, finishedAt, 1000),
    kind: 'logical',
    database: 'patient_telemetry',
    pgDumpVersion: '15.18',
    tables: [{ schema: 'telemetry', name: 'reading', rows: 10 }],
    objects: [{ key: logicalDumpKey(id), bytes: 1000, sha256: SHA256 }],
    ...fields,
  });
}

export function baseManifest(
  startedAt: string,
  wal: { timeline?: number; startWalSegment: string; stopWalSegment: string },
  fields: Partial<BaseManifest> = {},
): BaseManifest {
  const id = fields.id ?? backupIdAt(startedAt);
  const finishedAt = new Date(Date.parse(startedAt) + 120_000).toISOString();
  return baseManifestSchema.parse({
    ...common(id, startedAt, finishedAt, 5000),
    kind: 'base',
    systemIdentifier: '7301234567890123457',
    timeline: wal.timeline ?? Number.parseInt(wal.stopWalSegment.slice(0, 8), 16),
    startLsn: '0/2000028',
    stopLsn: '0/2000138',
    startWalSegment: wal.startWalSegment,
    stopWalSegment: wal.stopWalSegment,
    objects: [{ key: baseBackupKey(id), bytes: 5000, sha256: SHA256 }],
    ...fields,
  });
}

/** Stores a backup's data objects and then its manifest (the commit record), as the commands do. */
export async function storeBackup(storage: Storage, manifest: LogicalManifest | BaseManifest): Promise<void> {
  for (const object of manifest.objects) await storage.putBytes(object.key, Buffer.alloc(object.bytes));
  await storage.putBytes(manifestKey(manifest.id), `${JSON.stringify(manifest, null, 2)}\n`, { ifAbsent: true });
}
