import { createHash } from 'node:crypto';
import { z } from 'zod';

export const AUDIT_PREFIX = 'audit/';
/**
 * One signed head per record, each written once (audit/heads/<seq>.json), the newest being the
 * highest: write-once storage (If-None-Match, Object Lock) never has to overwrite anything.
 */
export const AUDIT_HEADS_PREFIX = 'audit/heads/';
/** The single, overwritten, unsigned head of logs written before signing; read, never written. */
export const LEGACY_AUDIT_HEAD_KEY = 'audit/head.json';
export const GENESIS_HASH = '0'.repeat(64);

export const auditRecordSchema = z.strictObject({
  seq: z.number().int().positive(),
  at: z.iso.datetime(),
  actor: z.strictObject({ user: z.string(), host: z.string(), pod: z.string().nullable() }),
  operation: z.string(),
  backupId: z.string().nullable(),
  outcome: z.enum(['success', 'failure']),
  details: z.record(z.string(), z.unknown()),
  /**
   * Numbers just below this one that a writer claimed (its signature is there) but never
   * committed (it died between its two puts). Write-once storage cannot free them, so the next
   * writer passes over them and says so here, signed; prevHash is then the hash of the record
   * before them. Present only when there are any.
   */
  skipped: z.array(z.number().int().positive()).min(1).optional(),
  prevHash: z.string().regex(/^[0-9a-f]{64}$/),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
});

export type AuditRecord = z.infer<typeof auditRecordSchema>;

/** "The log had reached record `seq`, whose hash is `hash`", signed by the job that wrote it. */
export const auditHeadSchema = z.strictObject({
  seq: z.number().int().positive(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  at: z.iso.datetime(),
});

export type AuditHead = z.infer<typeof auditHeadSchema>;
export type AuditEntry = Omit<AuditRecord, 'seq' | 'skipped' | 'prevHash' | 'hash'>;

/** Zero-padded so keys list in sequence order on every backend. */
export function auditKey(seq: number): string {
  return `${AUDIT_PREFIX}${String(seq).padStart(12, '0')}.json`;
}

export function seqOfAuditKey(key: string): number | undefined {
  const m = /^audit\/(\d{12})\.json$/.exec(key);
  return m ? Number(m[1]) : undefined;
}

export function auditHeadKey(seq: number): string {
  return `${AUDIT_HEADS_PREFIX}${String(seq).padStart(12, '0')}.json`;
}

export function seqOfAuditHeadKey(key: string): number | undefined {
  const m = /^audit\/heads\/(\d{12})\.json$/.exec(key);
  return m ? Number(m[1]) : undefined;
}

/**
 * Canonical JSON (sorted keys) so the hash does not depend on property order. It follows
 * JSON.stringify in everything else (toJSON, undefined members dropped, undefined in arrays as
 * null): the hash is computed on the record in memory and verified on what was stored.
 */
function canonical(value: unknown): string {
  const json = typeof (value as { toJSON?: unknown } | null)?.toJSON === 'function' ? (value as { toJSON: () => unknown }).toJSON() : value;
  if (Array.isArray(json)) return `[${json.map((item) => (item === undefined ? 'null' : canonical(item))).join(',')}]`;
  if (json !== null && typeof json === 'object') {
    return `{${Object.keys(json)
      .filter((k) => (json as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((json as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(json);
}

/** sha256 over every field but `hash` itself, chaining in the previous record's hash. */
export function hashRecord(record: Omit<AuditRecord, 'hash'>): string {
  return createHash('sha256').update(canonical(record)).digest('hex');
}
