import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { type AuditRecord, GENESIS_HASH, auditKey, auditRecordSchema, hashRecord, seqOfAuditKey } from './audit-record.js';

const unsigned: Omit<AuditRecord, 'hash'> = {
  seq: 1,
  at: '2026-01-10T02:01:30.000Z',
  actor: { user: 'postgres', host: 'db-0', pod: null },
  operation: 'create',
  backupId: '20260110T020000Z-3f9a',
  outcome: 'success',
  details: { durationSeconds: 90, kind: 'logical' },
  prevHash: GENESIS_HASH,
};

test('audit keys are zero-padded to 12 digits so every backend lists them in sequence order', () => {
  assert.equal(auditKey(1), 'audit/000000000001.json');
  assert.equal(auditKey(999_999_999_999), 'audit/999999999999.json');
  const keys = [10, 9, 100, 2].map(auditKey).sort();
  assert.deepEqual(keys.map(seqOfAuditKey), [2, 9, 10, 100]);
});

test('only the exact record key shape gives a sequence number; the head marker and strays do not', () => {
  assert.equal(seqOfAuditKey('audit/000000000042.json'), 42);
  for (const key of [
    'audit/head.json',
    'audit/42.json',
    'audit/000000000042.json.tmp',
    'x/audit/000000000042.json',
    'audit/0000000000042.json',
  ]) {
    assert.equal(seqOfAuditKey(key), undefined, key);
  }
});

test('the hash is sha256 over sorted-key compact JSON of every field but hash (the format existing logs were written in)', () => {
  const canonical =
    '{"actor":{"host":"db-0","pod":null,"user":"postgres"},"at":"2026-01-10T02:01:30.000Z","backupId":"20260110T020000Z-3f9a",' +
    '"details":{"durationSeconds":90,"kind":"logical"},"operation":"create","outcome":"success",' +
    `"prevHash":"${GENESIS_HASH}","seq":1}`;
  assert.equal(hashRecord(unsigned), createHash('sha256').update(canonical).digest('hex'));
});

test('property order does not change the hash; any change of content or of the previous hash does', () => {
  const reordered = Object.fromEntries(Object.entries(unsigned).reverse()) as typeof unsigned;
  assert.equal(hashRecord(reordered), hashRecord(unsigned));
  const base = hashRecord(unsigned);
  assert.notEqual(hashRecord({ ...unsigned, outcome: 'failure' }), base);
  assert.notEqual(hashRecord({ ...unsigned, details: { durationSeconds: 91, kind: 'logical' } }), base);
  assert.notEqual(hashRecord({ ...unsigned, prevHash: 'f'.repeat(64) }), base);
  assert.notEqual(hashRecord({ ...unsigned, actor: { ...unsigned.actor, pod: 'pms-backup-1' } }), base);
});

test('a record hashes the same in memory and after being stored as JSON (undefined members, Dates, nested arrays)', () => {
  const record = {
    ...unsigned,
    details: {
      errorCode: undefined,
      finishedAt: new Date('2026-01-10T02:01:30Z'),
      failed: ['amcheck', undefined],
      nested: { a: [{ b: 1 }] },
    },
  };
  const stored = JSON.parse(JSON.stringify(record)) as typeof record;
  assert.equal(hashRecord(stored), hashRecord(record));
});

test('the schema refuses a record with an unknown field, a bad hash or a non-positive sequence', () => {
  const record = { ...unsigned, hash: hashRecord(unsigned) };
  assert.ok(auditRecordSchema.safeParse(record).success);
  assert.ok(!auditRecordSchema.safeParse({ ...record, extra: 1 }).success);
  assert.ok(!auditRecordSchema.safeParse({ ...record, hash: record.hash.toUpperCase() }).success);
  assert.ok(!auditRecordSchema.safeParse({ ...record, seq: 0 }).success);
  assert.ok(!auditRecordSchema.safeParse({ ...record, outcome: 'partial' }).success);
  assert.ok(!auditRecordSchema.safeParse({ ...record, at: '10/01/2026' }).success);
});
