import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStorage } from '../storage/memory/memory-storage.js';
import { appendAudit, readAuditLog, verifyAudit } from './audit-log.js';
import { AUDIT_HEAD_KEY, type AuditEntry, type AuditRecord, GENESIS_HASH, auditKey, hashRecord } from './audit-record.js';

function entry(operation: string, details: Record<string, unknown> = {}): AuditEntry {
  return {
    at: '2026-01-10T02:01:30.000Z',
    actor: { user: 'postgres', host: 'db-0', pod: null },
    operation,
    backupId: null,
    outcome: 'success',
    details,
  };
}

async function logOf(count: number): Promise<{ storage: MemoryStorage; records: AuditRecord[] }> {
  const storage = new MemoryStorage();
  const records: AuditRecord[] = [];
  for (let i = 1; i <= count; i++) records.push(await appendAudit(storage, entry(`op-${i}`)));
  return { storage, records };
}

async function rewrite(storage: MemoryStorage, seq: number, change: (record: AuditRecord) => unknown): Promise<void> {
  const record = JSON.parse((await storage.getBytes(auditKey(seq))).toString()) as AuditRecord;
  await storage.putBytes(auditKey(seq), JSON.stringify(change(record)));
}

test('appended records chain from the genesis hash, each to the one before, and verify', async () => {
  const { storage, records } = await logOf(3);
  assert.deepEqual(
    records.map((r) => r.seq),
    [1, 2, 3],
  );
  assert.equal(records[0]?.prevHash, GENESIS_HASH);
  assert.equal(records[1]?.prevHash, records[0]?.hash);
  assert.equal(records[2]?.prevHash, records[1]?.hash);
  assert.deepEqual(await verifyAudit(storage), { ok: true, records: 3 });
  assert.deepEqual(await readAuditLog(storage), records);
  assert.deepEqual(JSON.parse((await storage.getBytes(AUDIT_HEAD_KEY)).toString()), { seq: 3, hash: records[2]?.hash });
});

test('an empty repository has a valid, empty log', async () => {
  assert.deepEqual(await verifyAudit(new MemoryStorage()), { ok: true, records: 0 });
});

test('writers racing for the same sequence number each get their own record and the chain stays whole', async () => {
  const storage = new MemoryStorage();
  const written = await Promise.all(Array.from({ length: 6 }, (_, i) => appendAudit(storage, entry(`writer-${i}`))));
  assert.deepEqual(
    written.map((r) => r.seq).sort((a, b) => a - b),
    [1, 2, 3, 4, 5, 6],
  );
  assert.deepEqual(await verifyAudit(storage), { ok: true, records: 6 });
});

test('a record whose details hold undefined or a Date still verifies once stored', async () => {
  const storage = new MemoryStorage();
  await appendAudit(storage, entry('restore', { errorCode: undefined, finishedAt: new Date('2026-01-10T02:01:30Z') }));
  await appendAudit(storage, entry('verify'));
  assert.deepEqual(await verifyAudit(storage), { ok: true, records: 2 });
});

test('a deleted record in the middle shows as a gap at its sequence number', async () => {
  const { storage } = await logOf(4);
  await storage.delete(auditKey(2));
  const result = await verifyAudit(storage);
  assert.equal(result.ok, false);
  assert.deepEqual(result.firstBroken, {
    seq: 2,
    key: auditKey(2),
    reason: 'record 2 is missing (deleted); the next present record is 3',
  });
});

test('deleting the newest record is noticed through the head marker', async () => {
  const { storage } = await logOf(3);
  await storage.delete(auditKey(3));
  const result = await verifyAudit(storage);
  assert.equal(result.ok, false);
  assert.equal(result.firstBroken?.seq, 3);
  assert.match(result.firstBroken?.reason ?? '', /truncated \(the newest record was 3\)/);
});

test('an edited record no longer matches its hash', async () => {
  const { storage } = await logOf(3);
  await rewrite(storage, 2, (r) => ({ ...r, outcome: 'failure' }));
  const result = await verifyAudit(storage);
  assert.deepEqual(result.firstBroken, { seq: 2, key: auditKey(2), reason: 'record content does not match its hash (edited)' });
});

test('a record replaced with a freshly hashed forgery breaks the link from the record after it', async () => {
  const { storage } = await logOf(3);
  await rewrite(storage, 2, (r) => {
    const { hash: _old, ...rest } = r;
    const forged = { ...rest, operation: 'nothing-happened' };
    return { ...forged, hash: hashRecord(forged) };
  });
  const result = await verifyAudit(storage);
  assert.equal(result.firstBroken?.seq, 3);
  assert.match(result.firstBroken?.reason ?? '', /does not chain to the previous record/);
});

test('a record copied under another sequence number is caught although its own hash is right', async () => {
  const { storage } = await logOf(2);
  await storage.putBytes(auditKey(3), await storage.getBytes(auditKey(2)));
  const result = await verifyAudit(storage);
  assert.equal(result.firstBroken?.seq, 3);
  assert.equal(result.firstBroken?.reason, 'record claims sequence 2 but is stored as 3');
});

test('a record that is not JSON or not an audit record is reported, and readAuditLog skips it', async () => {
  const { storage } = await logOf(3);
  await storage.putBytes(auditKey(2), '{"seq": 2, "trunc');
  const result = await verifyAudit(storage);
  assert.deepEqual(result.firstBroken, {
    seq: 2,
    key: auditKey(2),
    reason: 'record is not a well-formed audit record (edited or corrupt)',
  });
  assert.deepEqual(
    (await readAuditLog(storage)).map((r) => r.seq),
    [1, 3],
  );
});

test('the next record after a gap continues from the highest sequence present', async () => {
  const { storage, records } = await logOf(3);
  await storage.delete(auditKey(2));
  const next = await appendAudit(storage, entry('op-4'));
  assert.equal(next.seq, 4);
  assert.equal(next.prevHash, records[2]?.hash);
});
