/**
 * Manifests as the backup commands write them, for fast tests of the modules that read a
 * repository (catalog, PITR choice, prune, WAL summary) without running PostgreSQL. Every
 * manifest is checked by the real schema and signed through the real signing code, so a
 * fixture cannot drift from the format. Keys are made by openpgp.js in this process (no gpg).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { type SigningKey, type TrustPolicy, loadSigningKey, loadTrustedSigners } from '../crypto/signing.js';
import { type BaseManifest, type LogicalManifest, baseManifestSchema, logicalManifestSchema } from '../repository/manifest.js';
import { baseBackupKey, logicalDumpKey, manifestKey } from '../repository/layout.js';
import { putSignedRecord } from '../repository/signed-record.js';
import type { Storage } from '../storage/storage.js';
import { walObjectKey } from '../repository/wal-layout.js';
import { sealWalObject } from '../repository/wal-object-signature.js';
import { parseWalFileName } from '../wal/wal-file-name.js';

export interface TestSigning {
  /** What the backup jobs sign with. */
  readonly signer: SigningKey;
  /** What consumers accept: the signer's public key only. */
  readonly trust: TrustPolicy;
  /** A key nobody trusts (someone who can write to the bucket). */
  readonly stranger: SigningKey;
}

let signing: Promise<TestSigning> | undefined;

/** One signing key, its trust policy and a stranger's key, made once per test process. */
export function testSigning(): Promise<TestSigning> {
  signing ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pms-test-signing-'));
    try {
      const make = async (name: string): Promise<{ secret: string; public: string }> => {
        const key = await openpgp.generateKey({ userIDs: [{ name }], type: 'curve25519', format: 'armored' });
        writeFileSync(join(dir, `${name}.sec`), key.privateKey, { mode: 0o600 });
        writeFileSync(join(dir, `${name}.pub`), key.publicKey);
        return { secret: join(dir, `${name}.sec`), public: join(dir, `${name}.pub`) };
      };
      const jobs = await make('pms-backup jobs');
      const stranger = await make('stranger');
      return {
        signer: await loadSigningKey(jobs.secret, undefined),
        trust: { trusted: await loadTrustedSigners(jobs.public) },
        stranger: await loadSigningKey(stranger.secret, undefined),
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  return signing;
}

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

/**
 * Stores a backup's data objects and then its signed manifest (the commit record), as the
 * commands do. `signer: 'unsigned'` writes the manifest without a signature (made before signing).
 */
export async function storeBackup(
  storage: Storage,
  manifest: LogicalManifest | BaseManifest,
  signer: SigningKey | 'unsigned',
): Promise<void> {
  for (const object of manifest.objects) await storage.putBytes(object.key, Buffer.alloc(object.bytes));
  const text = `${JSON.stringify(manifest, null, 2)}\n`;
  if (signer === 'unsigned') await storage.putBytes(manifestKey(manifest.id), text, { ifAbsent: true });
  else await putSignedRecord(storage, manifestKey(manifest.id), text, signer, { ifAbsent: true });
}

/**
 * One WAL file as wal-push leaves it, for tests that read only names and seals: an object under
 * its name and (stand-in) content digest, sealed in its metadata by `by`. The bytes are not WAL.
 */
export async function storeSealedWal(storage: Storage, name: string, by: SigningKey): Promise<void> {
  const file = parseWalFileName(name);
  if (!file) throw new Error(`${name} is not a WAL file name`);
  const bytes = Buffer.from(`encrypted ${name}`);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const key = walObjectKey(file, sha256);
  await storage.putBytes(key, bytes, { ifAbsent: true, metadata: await sealWalObject(key, { sha256, bytes: bytes.length }, by) });
}
