import { z } from 'zod';
import { PmsError, isPmsError } from '../errors/catalogue.js';
import type { SigningKey, TrustPolicy } from '../crypto/signing.js';
import type { Storage } from '../storage/storage.js';
import { putSignedRecord, readSignedRecord } from './signed-record.js';
import { WAL_SYSTEM_KEY } from './wal-layout.js';

const identitySchema = z.strictObject({
  formatVersion: z.literal(1),
  systemIdentifier: z.string().regex(/^\d+$/),
  createdAt: z.iso.datetime(),
});

/**
 * wal/system.json names the one PostgreSQL system (pg_control's system identifier) whose WAL
 * this repository holds. Segment names repeat across systems (every initdb starts at
 * 000000010000000000000001), so a second server archiving here would interleave foreign WAL;
 * the first push claims the archive and every later push from another system is refused.
 */
export async function readArchiveIdentity(storage: Storage, trust: TrustPolicy): Promise<string | undefined> {
  let raw: Buffer;
  try {
    raw = (await readSignedRecord(storage, WAL_SYSTEM_KEY, trust.trusted)).bytes;
  } catch (error) {
    if (isPmsError(error, 'PMS_ERR_NOT_FOUND')) return undefined;
    throw error;
  }
  let parsed: z.infer<typeof identitySchema>;
  try {
    parsed = identitySchema.parse(JSON.parse(raw.toString('utf8')));
  } catch (error) {
    throw new PmsError(
      'PMS_ERR_MANIFEST',
      `${WAL_SYSTEM_KEY} in ${storage.location} is unreadable (${(error as Error).message}): restore it from the repository's history or contact the backup owner`,
      { cause: error },
    );
  }
  return parsed.systemIdentifier;
}

/** Claims the archive for `systemIdentifier` (signed by the server's WAL signing key), or checks it is already ours. */
export async function claimArchive(
  storage: Storage,
  systemIdentifier: string,
  signer: SigningKey,
  trust: TrustPolicy,
  now = new Date(),
): Promise<void> {
  let existing = await readArchiveIdentity(storage, trust);
  if (existing === undefined) {
    const body = `${JSON.stringify({ formatVersion: 1, systemIdentifier, createdAt: now.toISOString() }, null, 2)}\n`;
    try {
      await putSignedRecord(storage, WAL_SYSTEM_KEY, body, signer, { ifAbsent: true });
      return;
    } catch (error) {
      if (!isPmsError(error, 'PMS_ERR_TARGET_EXISTS')) throw error;
      existing = await readArchiveIdentity(storage, trust); // claimed concurrently: check whose it is
    }
  }
  if (existing !== systemIdentifier) throw systemMismatch(storage, existing ?? '(unknown)', systemIdentifier);
}

export function systemMismatch(storage: Storage, archive: string, server: string): PmsError {
  return new PmsError(
    'PMS_ERR_SYSTEM_MISMATCH',
    `the WAL archive in ${storage.location} belongs to PostgreSQL system ${archive}, but this WAL comes from system ${server}: give each cluster its own BACKUP_REPOSITORY (a re-initialised cluster is a new system)`,
    { details: { archiveSystemIdentifier: archive, walSystemIdentifier: server } },
  );
}
