import { z } from 'zod';
import { BACKUPS_PREFIX, backupIdOfKey, backupPrefix } from './layout.js';
import type { SigningKey, TrustPolicy } from '../crypto/signing.js';
import type { Storage } from '../storage/storage.js';
import { putSignedRecord, readSignedRecord } from './signed-record.js';

export const checkSchema = z.strictObject({ name: z.string(), ok: z.boolean(), detail: z.string() });

/** The `--json` output of verify (a contract), also stored beside the backup. */
export const verificationSchema = z.strictObject({
  id: z.string(),
  ok: z.boolean(),
  checks: z.array(checkSchema),
  durationSeconds: z.number().nonnegative(),
  verifiedAt: z.iso.datetime(),
});

export type Check = z.infer<typeof checkSchema>;
export type Verification = z.infer<typeof verificationSchema>;

export function verificationKey(id: string, verifiedAt: Date): string {
  return `${backupPrefix(id)}verification-${verifiedAt
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z')}.json`;
}

const VERIFICATION_FILE = /\/verification-\d{8}T\d{6}Z\.json$/;

/** Stores a verify run's record beside its backup, signed by the verifying job. */
export async function writeVerification(storage: Storage, record: Verification, signer: SigningKey): Promise<string> {
  const key = verificationKey(record.id, new Date(record.verifiedAt));
  await putSignedRecord(storage, key, `${JSON.stringify(record, null, 2)}\n`, signer, { ifAbsent: true });
  return key;
}

/**
 * Every stored verification record, newest first (monitor, prune, list). A record whose
 * signature does not prove it is reported as a failed verification, never as a pass: a planted
 * "ok" record must not make an unverified backup look verified.
 */
/** What `list` and `latest` know of a backup's verification: its newest trusted record. */
export interface VerificationSummary {
  readonly ok: boolean;
  readonly verifiedAt: string;
  /** Names of the checks that failed (empty when ok). */
  readonly failed: readonly string[];
}

/**
 * The newest verification of each backup, from trusted records only. A record that cannot be
 * trusted is left out here (monitor's trust check reports it): a planted "failed" record must
 * not make a good backup look bad and steer `latest` to an older one, any more than a planted
 * "ok" may make a bad one look verified.
 */
export async function newestVerifications(storage: Storage, trust: TrustPolicy): Promise<Map<string, VerificationSummary>> {
  const newest = new Map<string, VerificationSummary>();
  for (const record of await listVerifications(storage, trust, { trustedOnly: true })) {
    if (newest.has(record.id)) continue;
    newest.set(record.id, { ok: record.ok, verifiedAt: record.verifiedAt, failed: record.checks.filter((c) => !c.ok).map((c) => c.name) });
  }
  return newest;
}

export async function listVerifications(
  storage: Storage,
  trust: TrustPolicy,
  options: { trustedOnly?: boolean; onUntrusted?: (key: string, reason: string) => void } = {},
): Promise<Verification[]> {
  const keys: string[] = [];
  for await (const object of storage.list(BACKUPS_PREFIX)) {
    if (backupIdOfKey(object.key) !== undefined && VERIFICATION_FILE.test(object.key)) keys.push(object.key);
  }
  const records: Verification[] = [];
  for (const key of keys) {
    try {
      const { bytes } = await readSignedRecord(storage, key, trust.trusted);
      records.push(verificationSchema.parse(JSON.parse(bytes.toString('utf8'))));
    } catch (error) {
      options.onUntrusted?.(key, (error as Error).message);
      if (options.trustedOnly) continue;
      records.push({
        id: backupIdOfKey(key) ?? 'unknown',
        ok: false,
        checks: [{ name: 'record', ok: false, detail: `${key} cannot be trusted: ${(error as Error).message}` }],
        durationSeconds: 0,
        verifiedAt: new Date(0).toISOString(),
      });
    }
  }
  return records.sort((a, b) => b.verifiedAt.localeCompare(a.verifiedAt));
}
