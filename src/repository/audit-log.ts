import { hostname } from 'node:os';
import { PmsError, isPmsError } from '../errors/catalogue.js';
import { osUserName } from '../process/os-user.js';
import type { Storage } from '../storage/storage.js';
import {
  AUDIT_HEAD_KEY,
  AUDIT_PREFIX,
  type AuditEntry,
  type AuditRecord,
  GENESIS_HASH,
  auditKey,
  auditRecordSchema,
  hashRecord,
  seqOfAuditKey,
} from './audit-record.js';

export interface Actor {
  readonly user: string;
  readonly host: string;
  readonly pod: string | null;
}

export function currentActor(podName: string | undefined): Actor {
  return { user: osUserName(), host: hostname(), pod: podName ?? null };
}

async function lastSeq(storage: Storage): Promise<number> {
  let last = 0;
  for await (const object of storage.list(AUDIT_PREFIX)) {
    const seq = seqOfAuditKey(object.key);
    if (seq !== undefined && seq > last) last = seq;
  }
  return last;
}

async function readRecord(storage: Storage, seq: number): Promise<AuditRecord> {
  const raw = await storage.getBytes(auditKey(seq));
  return auditRecordSchema.parse(JSON.parse(raw.toString('utf8')));
}

/**
 * Appends a record to the hash-chained audit log in the repository. Each record is its own
 * write-once object (ifAbsent), so records are never rewritten; two writers racing for the same
 * sequence number cannot both win, and the loser retries on top of the winner.
 */
export async function appendAudit(storage: Storage, entry: AuditEntry): Promise<AuditRecord> {
  for (let attempt = 0; attempt < 8; attempt++) {
    const previousSeq = await lastSeq(storage);
    const prevHash = previousSeq === 0 ? GENESIS_HASH : (await readRecord(storage, previousSeq)).hash;
    const unsigned = { ...entry, seq: previousSeq + 1, prevHash };
    const record: AuditRecord = { ...unsigned, hash: hashRecord(unsigned) };
    try {
      await storage.putBytes(auditKey(record.seq), `${JSON.stringify(record)}\n`, { ifAbsent: true });
      // The head marker lets verify notice the newest records being deleted (a chain alone
      // cannot tell a truncated log from a short one).
      await storage.putBytes(AUDIT_HEAD_KEY, `${JSON.stringify({ seq: record.seq, hash: record.hash })}\n`).catch(() => undefined);
      return record;
    } catch (error) {
      if (!isPmsError(error, 'PMS_ERR_TARGET_EXISTS')) throw error;
    }
  }
  throw new PmsError('PMS_ERR_LOCKED', 'could not append to the audit log: too many concurrent writers; retry');
}

export interface AuditVerification {
  readonly ok: boolean;
  readonly records: number;
  /** The first record that breaks the chain, with why. */
  readonly firstBroken?: { readonly seq: number; readonly key: string; readonly reason: string };
}

/** Lists every record in order (parsing each); broken ones are reported by verifyAudit. */
export async function readAuditLog(storage: Storage): Promise<AuditRecord[]> {
  const keys: Array<{ seq: number; key: string }> = [];
  for await (const object of storage.list(AUDIT_PREFIX)) {
    const seq = seqOfAuditKey(object.key);
    if (seq !== undefined) keys.push({ seq, key: object.key });
  }
  keys.sort((a, b) => a.seq - b.seq);
  const records: AuditRecord[] = [];
  for (const { key } of keys) {
    const parsed = auditRecordSchema.safeParse(safeJson((await storage.getBytes(key)).toString('utf8')));
    if (parsed.success) records.push(parsed.data);
  }
  return records;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Walks the chain from record 1: every sequence number present, every record well-formed,
 * its hash recomputing, and its prevHash equal to the previous record's hash. A deleted record
 * shows as a gap; an edited one as a hash mismatch (or a broken link in the next record).
 */
export async function verifyAudit(storage: Storage): Promise<AuditVerification> {
  const keys: Array<{ seq: number; key: string }> = [];
  for await (const object of storage.list(AUDIT_PREFIX)) {
    const seq = seqOfAuditKey(object.key);
    if (seq !== undefined) keys.push({ seq, key: object.key });
  }
  keys.sort((a, b) => a.seq - b.seq);
  let prevHash = GENESIS_HASH;
  let expected = 1;
  for (const { seq, key } of keys) {
    if (seq !== expected) {
      return {
        ok: false,
        records: keys.length,
        firstBroken: {
          seq: expected,
          key: auditKey(expected),
          reason: `record ${expected} is missing (deleted); the next present record is ${seq}`,
        },
      };
    }
    const parsed = auditRecordSchema.safeParse(safeJson((await storage.getBytes(key)).toString('utf8')));
    if (!parsed.success)
      return {
        ok: false,
        records: keys.length,
        firstBroken: { seq, key, reason: 'record is not a well-formed audit record (edited or corrupt)' },
      };
    const record = parsed.data;
    const { hash, ...unsigned } = record;
    if (record.seq !== seq)
      return {
        ok: false,
        records: keys.length,
        firstBroken: { seq, key, reason: `record claims sequence ${record.seq} but is stored as ${seq}` },
      };
    if (hashRecord(unsigned) !== hash)
      return { ok: false, records: keys.length, firstBroken: { seq, key, reason: 'record content does not match its hash (edited)' } };
    if (record.prevHash !== prevHash)
      return {
        ok: false,
        records: keys.length,
        firstBroken: { seq, key, reason: 'record does not chain to the previous record (a record before it was replaced)' },
      };
    prevHash = hash;
    expected += 1;
  }
  const head = await storage.head(AUDIT_HEAD_KEY);
  if (head) {
    const marker = safeJson((await storage.getBytes(AUDIT_HEAD_KEY)).toString('utf8')) as { seq?: unknown } | undefined;
    const headSeq = typeof marker?.seq === 'number' ? marker.seq : 0;
    if (headSeq > keys.length) {
      const seq = keys.length + 1;
      return {
        ok: false,
        records: keys.length,
        firstBroken: {
          seq,
          key: auditKey(seq),
          reason: `record ${seq} is missing: the log was truncated (the newest record was ${headSeq})`,
        },
      };
    }
  }
  return { ok: true, records: keys.length };
}
