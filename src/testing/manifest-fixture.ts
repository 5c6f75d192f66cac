import { createHash } from 'node:crypto';
import type { SigningKey } from '../crypto/signing.js';
import { baseBackupKey, manifestKey, newBackupId } from '../repository/layout.js';
import type { BaseManifest } from '../repository/manifest.js';
import { putSignedRecord } from '../repository/signed-record.js';
import type { Storage } from '../storage/storage.js';

const FINGERPRINT = 'A'.repeat(40);

/**
 * A base backup as create-base-backup leaves it in a repository (its data object, then the
 * signed manifest naming it), without a PostgreSQL server: for tests of what happens to stored
 * backups (prune, retention, access rules), not of making them.
 */
export async function storeBaseBackupFixture(
  storage: Storage,
  signer: SigningKey,
  startedAt: Date,
  startWalSegment: string,
  data: Buffer | string = `tar taken at ${startedAt.toISOString()}`,
): Promise<string> {
  const id = newBackupId(startedAt);
  const bytes = Buffer.from(data);
  await storage.putBytes(baseBackupKey(id), bytes);
  const manifest: BaseManifest = {
    formatVersion: 1,
    id,
    kind: 'base',
    serverVersion: '15.8',
    serverVersionNum: 150008,
    startedAt: startedAt.toISOString(),
    finishedAt: startedAt.toISOString(),
    durationSeconds: 1,
    bytes: { plain: bytes.length, compressed: bytes.length, stored: bytes.length },
    compression: { algorithm: 'zstd', level: 3 },
    encryption: { format: 'openpgp', recipients: [FINGERPRINT] },
    keyFingerprints: [FINGERPRINT],
    objects: [{ key: baseBackupKey(id), bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }],
    host: 'fixture',
    createdBy: 'fixture',
    systemIdentifier: '7000000000000000001',
    timeline: 1,
    startLsn: '0/2000028',
    stopLsn: '0/2000100',
    startWalSegment,
    stopWalSegment: startWalSegment,
  };
  await putSignedRecord(storage, manifestKey(id), JSON.stringify(manifest), signer, { ifAbsent: true });
  return id;
}
