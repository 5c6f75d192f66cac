import { z } from 'zod';
import { BACKUPS_PREFIX, backupIdOfKey, backupPrefix } from './layout.js';
import type { Storage } from '../storage/storage.js';

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

/** Every stored verification record, newest first (monitor, prune). */
export async function listVerifications(storage: Storage): Promise<Verification[]> {
  const keys: string[] = [];
  for await (const object of storage.list(BACKUPS_PREFIX)) {
    if (backupIdOfKey(object.key) !== undefined && VERIFICATION_FILE.test(object.key)) keys.push(object.key);
  }
  const records: Verification[] = [];
  for (const key of keys) {
    try {
      records.push(verificationSchema.parse(JSON.parse((await storage.getBytes(key)).toString('utf8'))));
    } catch {
      records.push({
        id: backupIdOfKey(key) ?? 'unknown',
        ok: false,
        checks: [{ name: 'record', ok: false, detail: `${key} is unreadable` }],
        durationSeconds: 0,
        verifiedAt: new Date(0).toISOString(),
      });
    }
  }
  return records.sort((a, b) => b.verifiedAt.localeCompare(a.verifiedAt));
}
