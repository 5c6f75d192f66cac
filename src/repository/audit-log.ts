import { setTimeout as sleep } from 'node:timers/promises';
import { hostname } from 'node:os';
import { type SignatureFacts, type SigningKey, type TrustPolicy, signDetached, verifyDetached } from '../crypto/signing.js';
import { PmsError, isPmsError } from '../errors/catalogue.js';
import { osUserName } from '../process/os-user.js';
import type { Storage } from '../storage/storage.js';
import {
  AUDIT_PREFIX,
  type AuditEntry,
  type AuditHead,
  type AuditRecord,
  GENESIS_HASH,
  LEGACY_AUDIT_HEAD_KEY,
  auditHeadKey,
  auditHeadSchema,
  auditKey,
  auditRecordSchema,
  hashRecord,
  seqOfAuditHeadKey,
  seqOfAuditKey,
} from './audit-record.js';
import { putSignedRecord, readSignedRecord, signatureKey } from './signed-record.js';

export interface Actor {
  readonly user: string;
  readonly host: string;
  readonly pod: string | null;
}

export function currentActor(podName: string | undefined): Actor {
  return { user: osUserName(), host: hostname(), pod: podName ?? null };
}

/**
 * A signature whose record is missing and that is younger than this belongs to a writer between
 * its two puts (milliseconds apart): wait for it. An older one was left by a writer that died
 * there; write-once storage cannot free its number, so the next record passes over it.
 */
const CLAIM_STALE_MS = 30_000;
/** How long an append keeps trying (concurrent writers, a claim still in progress). */
const APPEND_BUDGET_MS = 45_000;
/** Unfinished numbers an append walks down over to find the record it chains to. */
const MAX_WALK_DOWN = 16;

interface AuditListing {
  /** Record sequence numbers present, ascending, with their keys. */
  readonly records: ReadonlyArray<{ readonly seq: number; readonly key: string }>;
  /** Head sequence numbers present, ascending. */
  readonly heads: readonly number[];
  readonly legacyHead: boolean;
}

async function listAudit(storage: Storage): Promise<AuditListing> {
  const records: Array<{ seq: number; key: string }> = [];
  const heads: number[] = [];
  let legacyHead = false;
  for await (const object of storage.list(AUDIT_PREFIX)) {
    const seq = seqOfAuditKey(object.key);
    if (seq !== undefined) records.push({ seq, key: object.key });
    else if (object.key === LEGACY_AUDIT_HEAD_KEY) legacyHead = true;
    else {
      const headSeq = seqOfAuditHeadKey(object.key);
      if (headSeq !== undefined) heads.push(headSeq);
    }
  }
  records.sort((a, b) => a.seq - b.seq);
  heads.sort((a, b) => a - b);
  return { records, heads, legacyHead };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

async function previousHash(storage: Storage, seq: number): Promise<string> {
  if (seq === 0) return GENESIS_HASH;
  const parsed = auditRecordSchema.safeParse(safeJson((await storage.getBytes(auditKey(seq))).toString('utf8')));
  if (!parsed.success) {
    throw new PmsError(
      'PMS_ERR_INTEGRITY',
      `cannot append to the audit log: its newest record ${auditKey(seq)} is not a well-formed audit record; run pms-backup audit verify`,
      { details: { key: auditKey(seq) } },
    );
  }
  return parsed.data.hash;
}

async function readOptional(storage: Storage, key: string): Promise<Buffer | undefined> {
  try {
    return await storage.getBytes(key);
  } catch (error) {
    if (isPmsError(error, 'PMS_ERR_NOT_FOUND')) return undefined;
    throw error;
  }
}

/** A number is taken once its signature (the claim) exists, or its record (logs written before signing). */
async function taken(storage: Storage, seq: number): Promise<boolean> {
  return (await storage.head(signatureKey(auditKey(seq)))) !== undefined || (await storage.head(auditKey(seq))) !== undefined;
}

/**
 * The highest taken number, in about 2·log2(n) existence checks instead of a listing of the whole
 * log (three objects per record, never pruned, read by every command): gallop to the first free
 * power of two, then bisect. This assumes no gaps. In a log with a record and its signature
 * deleted at one of the probed numbers it finds that gap; the record appended there chains to the
 * one before, so the tampering still shows (the record after it no longer chains).
 */
async function newestTaken(storage: Storage): Promise<number> {
  let present = 0;
  let absent = 1;
  while (await taken(storage, absent)) {
    present = absent;
    absent *= 2;
  }
  while (absent - present > 1) {
    const middle = Math.floor((present + absent) / 2);
    if (await taken(storage, middle)) present = middle;
    else absent = middle;
  }
  return present;
}

/**
 * Where the next record goes, the record it chains to and the dead claims between them; undefined
 * while a writer is between its two puts (wait for it). An empty number met on the way down (a
 * record deleted with its signature) is not declared: verify reports it as missing.
 */
async function nextSlot(storage: Storage, now: number): Promise<{ seq: number; prevSeq: number; skipped: number[] } | undefined> {
  const top = await newestTaken(storage);
  const skipped: number[] = [];
  let prevSeq = top;
  for (let walked = 0; prevSeq > 0 && (await storage.head(auditKey(prevSeq))) === undefined; walked++) {
    if (walked === MAX_WALK_DOWN) {
      throw new PmsError(
        'PMS_ERR_INTEGRITY',
        `cannot append to the audit log: no record among the ${MAX_WALK_DOWN} numbers below ${top + 1}; run pms-backup audit verify`,
      );
    }
    const claim = await storage.head(signatureKey(auditKey(prevSeq)));
    if (claim !== undefined) {
      if (now - claim.modifiedAt.getTime() < CLAIM_STALE_MS) return undefined;
      skipped.unshift(prevSeq);
    }
    prevSeq -= 1;
  }
  return { seq: top + 1, prevSeq, skipped };
}

/**
 * Appends a record to the audit log: `audit/<seq>.json`, signed (`.sig` beside it, bound to that
 * name, so a genuine record moved to another number no longer verifies), hash-chained to the
 * record before, then a signed head `audit/heads/<seq>.json`. Every object is written once and
 * nothing is ever deleted, so it works on write-once storage (If-None-Match, Object Lock, a role
 * without DeleteObject on audit/).
 *
 * Writers race for the next number: the signature is the claim (written first, ifAbsent), the
 * record the commit (ifAbsent); a loser goes on top of the winner. A claim without its record is
 * waited for while fresh, and passed over once stale (its writer died): the record written next
 * names it in `skipped`, signed. (putSignedRecord is not used for records: it deletes such a
 * signature at once, which breaks concurrent writers, and write-once storage refuses the delete.)
 */
export async function appendAudit(storage: Storage, entry: AuditEntry, signer: SigningKey): Promise<AuditRecord> {
  const deadline = Date.now() + APPEND_BUDGET_MS;
  while (Date.now() < deadline) {
    const slot = await nextSlot(storage, Date.now());
    if (slot === undefined) {
      await sleep(20 + Math.random() * 180);
      continue;
    }
    const key = auditKey(slot.seq);
    const unsigned = {
      ...entry,
      seq: slot.seq,
      ...(slot.skipped.length > 0 ? { skipped: slot.skipped } : {}),
      prevHash: await previousHash(storage, slot.prevSeq),
    };
    const record: AuditRecord = { ...unsigned, hash: hashRecord(unsigned) };
    const bytes = Buffer.from(`${JSON.stringify(record)}\n`, 'utf8');
    const signature = await signDetached(bytes, signer, key);
    try {
      await storage.putBytes(signatureKey(key), signature, { ifAbsent: true });
    } catch (error) {
      if (!isPmsError(error, 'PMS_ERR_TARGET_EXISTS')) throw error;
      continue; // another writer claimed this number: go on top of it
    }
    // Ours alone now: nobody else writes a record under a number whose claim they lost.
    await storage.putBytes(key, bytes, { ifAbsent: true });
    // Only this writer writes this head. A head that fails to land is not an error: the next
    // append writes a newer one, and verify reads heads as "the log reached at least this far".
    const head: AuditHead = { seq: slot.seq, hash: record.hash, at: record.at };
    await putSignedRecord(storage, auditHeadKey(slot.seq), `${JSON.stringify(head)}\n`, signer, { ifAbsent: true }).catch(() => undefined);
    return record;
  }
  throw new PmsError('PMS_ERR_LOCKED', 'could not append to the audit log: too many concurrent writers; retry');
}

/** Why verification refused a record (stable values, for --json and tests). */
export type AuditProblemKind =
  /** Records absent from the sequence (a gap, or the newest ones per a head or the anchor). */
  | 'missing'
  /** Signature absent, bad, or by a key not trusted: inserted, edited or forged. */
  | 'untrusted'
  /** A record stored under another sequence number than its own (reordered). */
  | 'moved'
  /** Not JSON, or not an audit record. */
  | 'malformed'
  /** Its hash does not recompute, or it does not chain to the record before it. */
  | 'unchained'
  /** The repository's log is older than, or differs from, a head seen outside the repository. */
  | 'rolled-back';

export interface AuditProblem {
  readonly seq: number;
  readonly key: string;
  readonly kind: AuditProblemKind;
  readonly reason: string;
}

/** A head seen outside the repository (Prometheus, an operator's note): `audit verify --anchor SEQ:HASH`. */
export interface AuditAnchor {
  readonly seq: number;
  /** The record's hash, or a prefix of it (at least 12 hex digits, as the metric label shows). */
  readonly hash: string;
}

export interface AuditVerification {
  readonly ok: boolean;
  readonly records: number;
  /** The first record that breaks the chain, with why (the first of `problems`). */
  readonly firstBroken?: { readonly seq: number; readonly key: string; readonly reason: string; readonly kind: AuditProblemKind };
  /** Every problem found, in sequence order (at most MAX_PROBLEMS). */
  readonly problems: readonly AuditProblem[];
  /** Records whose signature verified. */
  readonly signedRecords: number;
  /**
   * Records written before signing: accepted before the first signed record (whose prevHash pins
   * them), or, in a log without any signed record, only with allowUnsigned.
   */
  readonly unsignedRecords: number;
  /**
   * The newest point the repository proves: the newest record's (or a trusted head's, if newer)
   * sequence, hash and time. Note it, or let monitor export it, to compare with later (anchor).
   */
  readonly head: AuditHead | null;
  readonly anchor?: { readonly seq: number; readonly hash: string; readonly ok: boolean };
}

const MAX_PROBLEMS = 50;
const READ_CONCURRENCY = 8;

async function mapConcurrent<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** One record as read and checked on its own (the chain is checked afterwards, in order). */
interface CheckedRecord {
  readonly seq: number;
  readonly key: string;
  readonly record: AuditRecord | undefined;
  readonly signature: SignatureFacts | undefined;
  /** Absent .sig (as opposed to one that failed). */
  readonly unsigned: boolean;
  /** The signature failed: why, and whether it is a genuine record of another number. */
  readonly refused?: { readonly kind: 'untrusted' | 'moved'; readonly reason: string };
}

async function checkRecord(storage: Storage, seq: number, key: string, trust: TrustPolicy): Promise<CheckedRecord> {
  const bytes = await storage.getBytes(key);
  const parsed = auditRecordSchema.safeParse(safeJson(bytes.toString('utf8')));
  const record = parsed.success ? parsed.data : undefined;
  const armored = (await readOptional(storage, signatureKey(key)))?.toString('utf8');
  if (armored === undefined) return { seq, key, record, signature: undefined, unsigned: true };
  try {
    return { seq, key, record, signature: await verifyDetached(bytes, armored, trust.trusted, key), unsigned: false };
  } catch (error) {
    if (!isPmsError(error, 'PMS_ERR_UNTRUSTED')) throw error;
    // A genuine record copied under another number verifies under its own name.
    if (record !== undefined && record.seq !== seq) {
      const own = await verifyDetached(bytes, armored, trust.trusted, auditKey(record.seq)).catch(() => undefined);
      if (own !== undefined) {
        return {
          seq,
          key,
          record,
          signature: undefined,
          unsigned: false,
          refused: {
            kind: 'moved',
            reason: `record stored as ${seq} is the genuine record ${record.seq} (signed by ${own.signer} for ${auditKey(record.seq)}): the log was reordered`,
          },
        };
      }
    }
    return { seq, key, record, signature: undefined, unsigned: false, refused: { kind: 'untrusted', reason: error.message } };
  }
}

function range(from: number, to: number): string {
  return from === to ? `record ${from} is` : `records ${from}..${to} are`;
}

/**
 * Proves the audit log: every sequence number from 1 present, every record signed by a trusted
 * key for its own name, well-formed, its hash recomputing and chaining to the record before;
 * the newest signed head not ahead of the newest record (deleted newest records) and agreeing
 * with it; and, given an anchor seen outside the repository, the log not behind it or different
 * at it (records deleted together with their heads, which nothing left inside can show).
 */
export async function verifyAudit(storage: Storage, trust: TrustPolicy, anchor?: AuditAnchor): Promise<AuditVerification> {
  const listing = await listAudit(storage);
  const checked = await mapConcurrent(listing.records, READ_CONCURRENCY, ({ seq, key }) => checkRecord(storage, seq, key, trust));
  const problems: AuditProblem[] = [];
  const report = (seq: number, key: string, kind: AuditProblemKind, reason: string): void => {
    if (problems.length < MAX_PROBLEMS) problems.push({ seq, key, kind, reason });
  };
  const bySeq = new Map<number, AuditRecord>();
  let signedRecords = 0;
  let unsignedRecords = 0;
  // Records written before signing are proven by the first signed record: its prevHash pins
  // every byte before it. Without one, nothing vouches for them but --allow-unsigned.
  const firstSigned = checked.find((c) => c.signature !== undefined)?.seq;
  const legacy = (item: CheckedRecord): boolean =>
    item.unsigned && (firstSigned !== undefined ? item.seq < firstSigned : trust.allowUnsigned === true);
  const heads = new Set(listing.heads);
  /** Numbers a trusted record declared skipped (dead claims), and the record that did. */
  const skippedBy = new Map<number, number>();
  let expected = 1;
  for (const item of checked) {
    const { seq, key, record } = item;
    const trusted = item.signature !== undefined || legacy(item);
    if (record) bySeq.set(seq, record);
    // Dead claims the record passes over, as it says, signed; only numbers below it count.
    const declared = new Set(trusted && record?.seq === seq ? (record.skipped ?? []).filter((n) => n < seq) : []);
    for (const n of declared) {
      skippedBy.set(n, seq);
      // A head is written after its record: a number with a head was committed, so it was not a dead claim.
      if (heads.has(n))
        report(
          n,
          auditKey(n),
          'missing',
          `record ${n} was deleted after it was written (${auditHeadKey(n)} exists), though record ${seq} passes over it as a claim never committed`,
        );
    }
    for (let from = expected; from < seq; ) {
      if (declared.has(from)) {
        from += 1;
        continue;
      }
      let to = from;
      while (to + 1 < seq && !declared.has(to + 1)) to += 1;
      report(
        from,
        auditKey(from),
        'missing',
        `${range(from, to)} missing (deleted): record ${seq} follows ${from === 1 ? 'nothing' : `record ${from - 1}`}`,
      );
      from = to + 1;
    }
    expected = seq + 1;
    if (item.refused) report(seq, key, item.refused.kind, item.refused.reason);
    else if (item.signature) signedRecords += 1;
    else if (legacy(item)) unsignedRecords += 1;
    else if (firstSigned !== undefined)
      report(
        seq,
        key,
        'untrusted',
        `${key} is not signed (no ${signatureKey(key)}), yet record ${firstSigned} before it is: inserted by someone without a trusted signing key`,
      );
    else
      report(
        seq,
        key,
        'untrusted',
        `${key} is not signed (no ${signatureKey(key)}) and no record after it is: forged, or written before signing (--allow-unsigned accepts a log that has no signed record yet)`,
      );
    if (!record) {
      if (trusted) report(seq, key, 'malformed', `${key} is not a well-formed audit record`);
      continue;
    }
    if (trusted) {
      const { hash, ...unhashed } = record;
      // The record it chains to: the one just below, past the numbers it declares skipped.
      let below = seq - 1;
      while (declared.has(below)) below -= 1;
      const prevHash = below === 0 ? GENESIS_HASH : bySeq.get(below)?.hash; // undefined: missing, reported above
      if (record.seq !== seq) report(seq, key, 'moved', `${key} claims sequence ${record.seq} but is stored as ${seq}`);
      else if (hashRecord(unhashed) !== hash) report(seq, key, 'unchained', `${key}: its content does not match its hash (edited)`);
      else if (prevHash !== undefined && record.prevHash !== prevHash)
        report(
          seq,
          key,
          'unchained',
          `${key} does not chain to record ${below} (its prevHash is not that record's hash): a record before it was replaced`,
        );
    }
  }
  const lastSeq = listing.records.at(-1)?.seq ?? 0;
  let head: AuditHead | null = null;
  const newestRecord = bySeq.get(lastSeq);
  if (newestRecord) head = { seq: newestRecord.seq, hash: newestRecord.hash, at: newestRecord.at };

  // Only the newest head matters: each says "at least this far", and older ones are implied.
  const newestHeadSeq = listing.heads.at(-1);
  if (newestHeadSeq !== undefined) {
    const headKey = auditHeadKey(newestHeadSeq);
    try {
      const { bytes } = await readSignedRecord(storage, headKey, trust.trusted);
      const parsed = auditHeadSchema.safeParse(safeJson(bytes.toString('utf8')));
      if (!parsed.success) report(newestHeadSeq, headKey, 'malformed', `${headKey} is not a well-formed audit head`);
      else if (parsed.data.seq !== newestHeadSeq)
        report(newestHeadSeq, headKey, 'moved', `${headKey} claims sequence ${parsed.data.seq} but is stored as ${newestHeadSeq}`);
      else if (newestHeadSeq > lastSeq) {
        report(
          lastSeq + 1,
          auditKey(lastSeq + 1),
          'missing',
          `${range(lastSeq + 1, newestHeadSeq)} missing: the newest records were deleted (${headKey}, written ${parsed.data.at}, says the log reached ${newestHeadSeq})`,
        );
        head = parsed.data;
      } else {
        const record = bySeq.get(newestHeadSeq);
        if (record && record.hash !== parsed.data.hash)
          report(
            newestHeadSeq,
            auditKey(newestHeadSeq),
            'unchained',
            `${auditKey(newestHeadSeq)} is not the record its head ${headKey} names: replaced after it was written`,
          );
      }
    } catch (error) {
      if (!isPmsError(error, 'PMS_ERR_UNTRUSTED')) throw error;
      report(newestHeadSeq, headKey, 'untrusted', error.message);
    }
  }
  if (listing.legacyHead) {
    // The pre-signing head: unsigned and overwritten, so it can only ever add a failure.
    const legacy = safeJson((await storage.getBytes(LEGACY_AUDIT_HEAD_KEY)).toString('utf8')) as { seq?: unknown } | undefined;
    if (typeof legacy?.seq === 'number' && legacy.seq > Math.max(lastSeq, head?.seq ?? 0)) {
      report(
        lastSeq + 1,
        auditKey(lastSeq + 1),
        'missing',
        `${range(lastSeq + 1, legacy.seq)} missing: the log was truncated (${LEGACY_AUDIT_HEAD_KEY} says the newest record was ${legacy.seq})`,
      );
    }
  }

  let anchorResult: AuditVerification['anchor'];
  if (anchor) {
    const wanted = anchor.hash.toLowerCase();
    const at = bySeq.get(anchor.seq);
    const reached = Math.max(lastSeq, head?.seq ?? 0);
    let ok = true;
    if (anchor.seq > reached) {
      ok = false;
      report(
        anchor.seq,
        auditKey(anchor.seq),
        'rolled-back',
        `the repository's audit log ends at record ${reached}, but record ${anchor.seq} was seen outside it (anchor ${anchor.seq}:${wanted}): records after ${reached} were deleted together with their heads`,
      );
    } else if (!at && skippedBy.has(anchor.seq)) {
      ok = false;
      report(
        anchor.seq,
        auditKey(anchor.seq),
        'rolled-back',
        `record ${anchor.seq} was seen outside the repository (anchor ${anchor.seq}:${wanted}), but record ${skippedBy.get(anchor.seq)} passes over it as a claim never committed: it was deleted`,
      );
    } else if (at && !at.hash.startsWith(wanted)) {
      ok = false;
      report(
        anchor.seq,
        auditKey(anchor.seq),
        'rolled-back',
        `${auditKey(anchor.seq)} has hash ${at.hash.slice(0, 12)}…, not ${wanted} as seen outside the repository: the log was rewritten at or before record ${anchor.seq}`,
      );
    } else if (!at) ok = false; // a gap at the anchor, reported above
    anchorResult = { seq: anchor.seq, hash: wanted, ok };
  }

  problems.sort((a, b) => a.seq - b.seq);
  const [first] = problems;
  return {
    ok: problems.length === 0,
    records: listing.records.length,
    ...(first ? { firstBroken: { seq: first.seq, key: first.key, reason: first.reason, kind: first.kind } } : {}),
    problems,
    signedRecords,
    unsignedRecords,
    head,
    ...(anchorResult ? { anchor: anchorResult } : {}),
  };
}

/** A record as `pms-backup audit` lists it: the record, and whether its signature proves it. */
export type ListedAuditRecord = AuditRecord & {
  /** Fingerprint of the trusted key that signed it; null when unsigned or refused. */
  readonly signer: string | null;
  /** Why the record is not proven (absent when it is). */
  readonly problem?: string;
};

/** Lists every well-formed record in order, each marked with its signer or why it is not trusted. */
export async function readAuditLog(storage: Storage, trust: TrustPolicy): Promise<ListedAuditRecord[]> {
  const listing = await listAudit(storage);
  const checked = await mapConcurrent(listing.records, READ_CONCURRENCY, ({ seq, key }) => checkRecord(storage, seq, key, trust));
  const listed: ListedAuditRecord[] = [];
  for (const item of checked) {
    if (!item.record) continue;
    const problem = item.refused?.reason ?? (item.unsigned ? 'not signed' : undefined);
    listed.push({ ...item.record, signer: item.signature?.signer ?? null, ...(problem ? { problem } : {}) });
  }
  return listed;
}
