import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { PmsError, isPmsError } from '../errors/catalogue.js';
import type { SigningKey, TrustPolicy } from '../crypto/signing.js';
import type { Storage } from '../storage/storage.js';
import { cosignRecord, putSignedRecord, readSignedRecord } from './signed-record.js';
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
  return (await readIdentityRecord(storage, trust))?.systemIdentifier;
}

interface IdentityRecord {
  readonly systemIdentifier: string;
  readonly bytes: Buffer;
  /** Fingerprint of the trusted key whose signature (or co-signature) proved it. */
  readonly signer: string | undefined;
}

/**
 * The record is signed by the WAL key that first claimed the archive and, after a rotation, also
 * co-signed by its successor (signed-record.ts): either proves it while its key is trusted.
 */
async function readIdentityRecord(storage: Storage, trust: TrustPolicy): Promise<IdentityRecord | undefined> {
  let raw: Buffer;
  let signer: string | undefined;
  try {
    const record = await readSignedRecord(storage, WAL_SYSTEM_KEY, trust.trusted, { cosigned: true });
    raw = record.bytes;
    signer = record.signature?.signer;
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
  return { systemIdentifier: parsed.systemIdentifier, bytes: raw, signer };
}

/** wal/system.json's content as a claim writes it. */
export function identityRecordBody(systemIdentifier: string, now = new Date()): string {
  return `${JSON.stringify({ formatVersion: 1, systemIdentifier, createdAt: now.toISOString() }, null, 2)}\n`;
}

/** Claims the archive for `systemIdentifier` (signed by the server's WAL signing key), or checks it is already ours. */
export async function claimArchive(
  storage: Storage,
  systemIdentifier: string,
  signer: SigningKey,
  trust: TrustPolicy,
  now = new Date(),
): Promise<void> {
  let existing = await readIdentityRecord(storage, trust);
  if (existing === undefined) {
    const body = identityRecordBody(systemIdentifier, now);
    try {
      await putSignedRecord(storage, WAL_SYSTEM_KEY, body, signer, { ifAbsent: true });
      return;
    } catch (error) {
      if (!isPmsError(error, 'PMS_ERR_TARGET_EXISTS')) throw error;
      existing = await concurrentClaim(storage, trust); // claimed concurrently: check whose it is
    }
  }
  if (existing?.systemIdentifier !== systemIdentifier)
    throw systemMismatch(storage, existing?.systemIdentifier ?? '(unknown)', systemIdentifier);
  // Proved by another key (the WAL key before a rotation): co-sign it now, while that key is
  // still trusted, so the archive stays claimed once it is retired. One HEAD per run afterwards.
  if (existing.signer !== undefined && existing.signer !== signer.description.fingerprint) {
    await cosignRecord(storage, WAL_SYSTEM_KEY, existing.bytes, signer);
  }
}

/** How long a push that lost the first claim waits for the winner's record to appear. */
const CONCURRENT_CLAIM_WAIT_MS = 10_000;
const CONCURRENT_CLAIM_POLL_MS = 50;

/**
 * The record of a claim that won the race against ours. The winner writes its signature first
 * and its record second (signed-record.ts), so right after our signature lost, the record may not
 * exist yet: read again until it does, instead of taking the gap for a foreign archive (two
 * members with archive_mode = always, or two pushes at once on a fresh repository, saw
 * PMS_ERR_SYSTEM_MISMATCH with "(unknown)").
 */
async function concurrentClaim(storage: Storage, trust: TrustPolicy): Promise<IdentityRecord> {
  const deadline = Date.now() + CONCURRENT_CLAIM_WAIT_MS;
  for (;;) {
    const record = await readIdentityRecord(storage, trust);
    if (record !== undefined) return record;
    if (Date.now() >= deadline) {
      throw new PmsError(
        'PMS_ERR_LOCKED',
        `another writer is claiming ${WAL_SYSTEM_KEY} in ${storage.location} (its signature exists, its record did not appear within ${CONCURRENT_CLAIM_WAIT_MS / 1000} s); PostgreSQL retries the push. If this persists, that writer died between its two writes: the leftover signature is replaced once it is a minute old`,
      );
    }
    await sleep(CONCURRENT_CLAIM_POLL_MS);
  }
}

export function systemMismatch(storage: Storage, archive: string, server: string): PmsError {
  return new PmsError(
    'PMS_ERR_SYSTEM_MISMATCH',
    `the WAL archive in ${storage.location} belongs to PostgreSQL system ${archive}, but this WAL comes from system ${server}: give each cluster its own BACKUP_REPOSITORY (a re-initialised cluster is a new system)`,
    { details: { archiveSystemIdentifier: archive, walSystemIdentifier: server } },
  );
}
