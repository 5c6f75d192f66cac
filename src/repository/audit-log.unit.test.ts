import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { type SigningKey, type TrustPolicy, loadSigningKey, loadTrustedSigners, signDetached } from '../crypto/signing.js';
import { FsStorage } from '../storage/fs/fs-storage.js';
import type { Storage } from '../storage/storage.js';
import { type AuditVerification, appendAudit, readAuditLog, verifyAudit } from './audit-log.js';
import { type AuditEntry, type AuditRecord, GENESIS_HASH, auditHeadKey, auditKey, hashRecord } from './audit-record.js';
import { signatureKey } from './signed-record.js';

function entry(operation: string, backupId: string | null = null): AuditEntry {
  return {
    at: new Date().toISOString(),
    actor: { user: 'pms', host: 'cronjob', pod: null },
    operation,
    backupId,
    outcome: 'success',
    details: {},
  };
}

/** What an attacker without the signing key can do: write records with the unkeyed hash chain. */
function forge(seq: number, prevHash: string, fields: Partial<AuditEntry> = {}): { record: AuditRecord; text: string } {
  const unhashed = { ...entry('verify'), ...fields, seq, prevHash };
  const record = { ...unhashed, hash: hashRecord(unhashed) };
  return { record, text: `${JSON.stringify(record)}\n` };
}

function problemAt(result: AuditVerification, seq: number) {
  return result.problems.find((p) => p.seq === seq);
}

describe('the audit log: signed, chained, append-only', () => {
  let keysDir: string;
  let signer: SigningKey;
  let stranger: SigningKey;
  let trust: TrustPolicy;
  let root: string;
  let storage: Storage;
  const repositories: string[] = [];
  /** A fresh, empty file repository (several tests build a second one). */
  const freshRepository = (): void => {
    root = mkdtempSync(join(tmpdir(), 'pms-audit-repo-'));
    repositories.push(root);
    storage = new FsStorage(root);
  };

  before(async () => {
    keysDir = mkdtempSync(join(tmpdir(), 'pms-audit-keys-'));
    for (const name of ['jobs', 'stranger']) {
      const key = await openpgp.generateKey({ userIDs: [{ name }], type: 'curve25519', format: 'armored' });
      writeFileSync(join(keysDir, `${name}.sec`), key.privateKey, { mode: 0o600 });
      writeFileSync(join(keysDir, `${name}.pub`), key.publicKey);
    }
    signer = await loadSigningKey(join(keysDir, 'jobs.sec'), undefined);
    stranger = await loadSigningKey(join(keysDir, 'stranger.sec'), undefined);
    trust = { trusted: await loadTrustedSigners(join(keysDir, 'jobs.pub')) };
  });
  after(() => {
    for (const dir of [keysDir, ...repositories]) rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(freshRepository);

  const appendFive = async (): Promise<AuditRecord[]> => {
    const records: AuditRecord[] = [];
    for (const op of ['create', 'verify', 'restore-pitr', 'monitor', 'prune']) records.push(await appendAudit(storage, entry(op), signer));
    return records;
  };
  const text = async (key: string) => (await storage.getBytes(key)).toString('utf8');
  const remove = async (seq: number, { head = false } = {}) => {
    await storage.delete(auditKey(seq));
    await storage.delete(signatureKey(auditKey(seq)));
    if (head) {
      await storage.delete(auditHeadKey(seq));
      await storage.delete(signatureKey(auditHeadKey(seq)));
    }
  };

  test('a genuine chain verifies: every record signed for its own name, chained, one signed head per record', async () => {
    const records = await appendFive();
    assert.deepEqual(
      records.map((r) => r.seq),
      [1, 2, 3, 4, 5],
    );
    assert.equal(records[0]!.prevHash, GENESIS_HASH);
    assert.equal(records[3]!.prevHash, records[2]!.hash);
    for (let seq = 1; seq <= 5; seq++) {
      assert.match(await text(signatureKey(auditKey(seq))), /-----BEGIN PGP SIGNATURE-----/);
      assert.deepEqual(JSON.parse(await text(auditHeadKey(seq))), { seq, hash: records[seq - 1]!.hash, at: records[seq - 1]!.at });
      assert.match(await text(signatureKey(auditHeadKey(seq))), /-----BEGIN PGP SIGNATURE-----/);
    }
    const result = await verifyAudit(storage, trust);
    assert.equal(result.ok, true, JSON.stringify(result.problems));
    assert.equal(result.records, 5);
    assert.equal(result.signedRecords, 5);
    assert.equal(result.unsignedRecords, 0);
    assert.deepEqual(result.head, { seq: 5, hash: records[4]!.hash, at: records[4]!.at });
    assert.equal(result.firstBroken, undefined);
    // The anchor an operator noted earlier still matches, by full hash or by its 12-digit prefix.
    assert.equal((await verifyAudit(storage, trust, { seq: 3, hash: records[2]!.hash })).ok, true);
    assert.deepEqual((await verifyAudit(storage, trust, { seq: 5, hash: records[4]!.hash.slice(0, 12) })).anchor, {
      seq: 5,
      hash: records[4]!.hash.slice(0, 12),
      ok: true,
    });
    const listed = await readAuditLog(storage, trust);
    assert.deepEqual(
      listed.map((r) => [r.seq, r.operation, r.signer, r.problem]),
      records.map((r) => [r.seq, r.operation, signer.description.fingerprint, undefined]),
    );
  });

  test('deletion: a record removed from the middle is a gap; the newest removed is shown by the newest head', async () => {
    await appendFive();
    await remove(3);
    const gap = await verifyAudit(storage, trust);
    assert.equal(gap.ok, false);
    assert.deepEqual(gap.firstBroken, {
      seq: 3,
      key: auditKey(3),
      kind: 'missing',
      reason: 'record 3 is missing (deleted): record 4 follows record 2',
    });

    freshRepository();
    await appendFive();
    await remove(5);
    await remove(4);
    const truncated = await verifyAudit(storage, trust);
    assert.equal(truncated.ok, false);
    assert.equal(truncated.firstBroken?.kind, 'missing');
    assert.equal(truncated.firstBroken?.seq, 4);
    assert.match(
      truncated.firstBroken?.reason ?? '',
      /^records 4\.\.5 are missing: the newest records were deleted \(audit\/heads\/000000000005\.json/,
    );
    // The head the repository proves is still 5, so monitor's sequence does not go down.
    assert.equal(truncated.head?.seq, 5);
  });

  test('deletion then an append: a record deleted where append probes is refilled, and the tampering still shows', async () => {
    await appendFive();
    await remove(4); // 4 is one of the numbers append's search probes (1, 2, 4, 8, ...)
    const appended = await appendAudit(storage, entry('create'), signer);
    assert.equal(appended.seq, 4);
    const result = await verifyAudit(storage, trust);
    assert.equal(result.ok, false);
    assert.deepEqual(
      result.problems.map((p) => [p.seq, p.kind]),
      [[5, 'unchained']],
    );
    assert.match(result.firstBroken?.reason ?? '', /does not chain to record 4 .*a record before it was replaced/);
  });

  test("insertion: the review's attack (delete restore-pitr, invent a verify record, re-chain and rewrite the head) is refused", async () => {
    const records = await appendFive();
    // Record 3 (restore-pitr) replaced by an invented verify record; 4 and 5 re-chained on top of
    // it with the unkeyed hash, exactly what passed `audit verify` before; the heads rewritten.
    let prev = records[1]!.hash;
    for (const seq of [3, 4, 5]) {
      const fake = forge(seq, prev, seq === 3 ? { operation: 'verify' } : { operation: records[seq - 1]!.operation });
      await storage.putBytes(auditKey(seq), fake.text);
      await storage.putBytes(auditHeadKey(seq), `${JSON.stringify({ seq, hash: fake.record.hash, at: fake.record.at })}\n`);
      prev = fake.record.hash;
    }
    await storage.delete(signatureKey(auditKey(3)));
    const result = await verifyAudit(storage, trust);
    assert.equal(result.ok, false);
    assert.equal(result.firstBroken?.seq, 3);
    assert.equal(result.firstBroken?.kind, 'untrusted');
    assert.match(
      result.firstBroken?.reason ?? '',
      /^audit\/000000000003\.json is not signed \(no audit\/000000000003\.json\.sig\), yet record 1 before it is/,
    );
    // 4 and 5 kept their genuine signatures, which no longer verify over the rewritten bytes.
    assert.match(
      problemAt(result, 4)?.reason ?? '',
      /audit\/000000000004\.json is not trusted: its signature by [0-9A-F]{40} does not verify/,
    );
    // The rewritten head's old signature does not verify either.
    assert.ok(result.problems.some((p) => p.key === auditHeadKey(5) && p.kind === 'untrusted'));

    // An invented record appended at the end, chained correctly, unsigned: refused as well.
    freshRepository();
    const genuine = await appendFive();
    await storage.putBytes(auditKey(6), forge(6, genuine[4]!.hash).text);
    const appended = await verifyAudit(storage, trust);
    assert.equal(appended.ok, false);
    assert.deepEqual(
      appended.problems.map((p) => [p.seq, p.kind]),
      [[6, 'untrusted']],
    );
  });

  test('modification: one edited record fails its signature, even with its hash recomputed', async () => {
    const records = await appendFive();
    const edited = { ...records[1]!, outcome: 'failure' as const, details: { note: 'edited' } };
    const { hash: _, ...unhashed } = edited;
    await storage.putBytes(auditKey(2), `${JSON.stringify({ ...edited, hash: hashRecord(unhashed) })}\n`);
    const result = await verifyAudit(storage, trust);
    assert.equal(result.ok, false);
    assert.equal(result.firstBroken?.seq, 2);
    assert.equal(result.firstBroken?.kind, 'untrusted');
    assert.match(result.firstBroken?.reason ?? '', /its signature by [0-9A-F]{40} does not verify/);
    // The unedited record 3 still names the original record 2's hash.
    assert.equal(problemAt(result, 3)?.kind, 'unchained');
    assert.equal(
      (await readAuditLog(storage, trust)).find((r) => r.seq === 2)?.signer,
      null,
      'audit lists the edited record without a signer',
    );
  });

  test('reordering: genuine records swapped (with their signatures) no longer verify under their new numbers', async () => {
    await appendFive();
    const [two, twoSig, three, threeSig] = await Promise.all(
      [auditKey(2), signatureKey(auditKey(2)), auditKey(3), signatureKey(auditKey(3))].map((k) => storage.getBytes(k)),
    );
    await storage.putBytes(auditKey(2), three!);
    await storage.putBytes(signatureKey(auditKey(2)), threeSig!);
    await storage.putBytes(auditKey(3), two!);
    await storage.putBytes(signatureKey(auditKey(3)), twoSig!);
    const result = await verifyAudit(storage, trust);
    assert.equal(result.ok, false);
    assert.deepEqual(
      result.problems.slice(0, 2).map((p) => [p.seq, p.kind]),
      [
        [2, 'moved'],
        [3, 'moved'],
      ],
    );
    assert.match(
      result.firstBroken?.reason ?? '',
      /^record stored as 2 is the genuine record 3 \(signed by [0-9A-F]{40} for audit\/000000000003\.json\)/,
    );
  });

  test('rolled-back head: the newest records deleted with their heads pass inside the repository, and fail against the anchor', async () => {
    const records = await appendFive();
    const anchor = { seq: 5, hash: records[4]!.hash.slice(0, 12) };
    await remove(5, { head: true });
    await remove(4, { head: true });
    // What remains is a consistent, signed log of 3 records: nothing inside the repository
    // testifies to 4 and 5. That is what the anchor outside is for.
    const inside = await verifyAudit(storage, trust);
    assert.equal(inside.ok, true);
    assert.equal(inside.head?.seq, 3);
    const anchored = await verifyAudit(storage, trust, anchor);
    assert.equal(anchored.ok, false);
    assert.deepEqual(anchored.anchor, { ...anchor, ok: false });
    assert.equal(anchored.firstBroken?.kind, 'rolled-back');
    assert.match(
      anchored.firstBroken?.reason ?? '',
      /^the repository's audit log ends at record 3, but record 5 was seen outside it \(anchor 5:[0-9a-f]{12}\): records after 3 were deleted together with their heads/,
    );
    // Deleted and re-grown past the anchor by later appends: the anchored record differs.
    await appendAudit(storage, entry('create'), signer);
    await appendAudit(storage, entry('create'), signer);
    const regrown = await verifyAudit(storage, trust, anchor);
    assert.equal(regrown.ok, false);
    assert.equal(regrown.firstBroken?.kind, 'rolled-back');
    assert.match(regrown.firstBroken?.reason ?? '', /the log was rewritten at or before record 5/);
  });

  test('a record signed by a key that is not trusted is refused, naming that key', async () => {
    await appendAudit(storage, entry('create'), signer);
    await appendAudit(storage, entry('verify'), stranger);
    const result = await verifyAudit(storage, trust);
    assert.equal(result.ok, false);
    assert.equal(result.firstBroken?.seq, 2);
    assert.equal(result.firstBroken?.kind, 'untrusted');
    assert.match(
      result.firstBroken?.reason ?? '',
      new RegExp(`signed by ${stranger.description.fingerprint}, which is not in BACKUP_TRUSTED_SIGNERS_FILE`),
    );
    // Its head is the stranger's too, and is refused.
    assert.ok(result.problems.some((p) => p.key === auditHeadKey(2) && p.kind === 'untrusted'));
    // A whole log by the stranger proves nothing either.
    assert.equal((await verifyAudit(storage, { trusted: await loadTrustedSigners(join(keysDir, 'stranger.pub')) })).ok, false);
  });

  test('a log written before signing: its unsigned prefix is pinned by the first signed record; an unsigned record after it is not', async () => {
    // The pre-signing format: plain records and the overwritten audit/head.json.
    let prev = GENESIS_HASH;
    const legacy: AuditRecord[] = [];
    for (const seq of [1, 2, 3]) {
      const old = forge(seq, prev, { operation: 'create' });
      await storage.putBytes(auditKey(seq), old.text);
      legacy.push(old.record);
      prev = old.record.hash;
    }
    await storage.putBytes('audit/head.json', `${JSON.stringify({ seq: 3, hash: prev })}\n`);
    const unsignedOnly = await verifyAudit(storage, trust);
    assert.equal(unsignedOnly.ok, false, 'nothing vouches for an all-unsigned log');
    assert.match(unsignedOnly.firstBroken?.reason ?? '', /--allow-unsigned accepts a log that has no signed record yet/);
    assert.equal((await verifyAudit(storage, { ...trust, allowUnsigned: true })).ok, true);

    await appendAudit(storage, entry('create'), signer);
    await appendAudit(storage, entry('monitor'), signer);
    const upgraded = await verifyAudit(storage, trust);
    assert.equal(upgraded.ok, true, JSON.stringify(upgraded.problems));
    assert.equal(upgraded.unsignedRecords, 3);
    assert.equal(upgraded.signedRecords, 2);

    // Editing a legacy record (hashes recomputed to the end of the prefix) breaks the first signed link.
    let rechained = legacy[0]!.hash;
    for (const seq of [2, 3]) {
      const edited = forge(seq, rechained, { operation: seq === 2 ? 'restore' : 'create' });
      await storage.putBytes(auditKey(seq), edited.text);
      rechained = edited.record.hash;
    }
    const edited = await verifyAudit(storage, trust);
    assert.equal(edited.ok, false);
    assert.deepEqual(
      edited.problems.map((p) => [p.seq, p.kind]),
      [[4, 'unchained']],
    );

    // And an unsigned record after signing began is an insertion, even with --allow-unsigned.
    freshRepository();
    const genuine = await appendFive();
    await storage.putBytes(auditKey(6), forge(6, genuine[4]!.hash).text);
    const inserted = await verifyAudit(storage, { ...trust, allowUnsigned: true });
    assert.deepEqual(
      inserted.problems.map((p) => [p.seq, p.kind]),
      [[6, 'untrusted']],
    );
  });

  test('an empty repository has a valid, empty log with no head', async () => {
    const result = await verifyAudit(storage, trust);
    assert.equal(result.ok, true);
    assert.equal(result.records, 0);
    assert.equal(result.head, null);
  });

  test('a record whose details hold undefined or a Date verifies once stored (hashed as JSON.stringify writes it)', async () => {
    await appendAudit(
      storage,
      { ...entry('restore'), details: { errorCode: undefined, finishedAt: new Date('2026-01-10T02:01:30Z') } },
      signer,
    );
    await appendAudit(storage, entry('verify'), signer);
    const result = await verifyAudit(storage, trust);
    assert.equal(result.ok, true, JSON.stringify(result.problems));
  });

  test('a genuine record copied (with its signature) under the next number is named as moved; a truncated record is refused and not listed', async () => {
    await appendFive();
    await storage.putBytes(auditKey(6), await storage.getBytes(auditKey(2)));
    await storage.putBytes(signatureKey(auditKey(6)), await storage.getBytes(signatureKey(auditKey(2))));
    const copied = await verifyAudit(storage, trust);
    assert.deepEqual(
      copied.problems.map((p) => [p.seq, p.kind]),
      [[6, 'moved']],
    );
    assert.match(copied.firstBroken?.reason ?? '', /^record stored as 6 is the genuine record 2/);

    await storage.putBytes(auditKey(3), '{"seq": 3, "trunc');
    const truncated = await verifyAudit(storage, trust);
    assert.deepEqual(
      truncated.problems.slice(0, 1).map((p) => [p.seq, p.kind]),
      [[3, 'untrusted']],
    );
    // audit lists what each record says (the copy says 2), marked with why it is not trusted.
    assert.deepEqual(
      (await readAuditLog(storage, trust)).map((r) => [r.seq, r.problem?.replace(/ \(.*/, '')]),
      [
        [1, undefined],
        [2, undefined],
        [4, undefined],
        [5, undefined],
        [2, 'record stored as 6 is the genuine record 2'],
      ],
    );
  });

  test('concurrent writers each get their own number and the chain stays whole', async () => {
    const written = await Promise.all(Array.from({ length: 8 }, (_, i) => appendAudit(storage, entry(`op-${i}`), signer)));
    assert.deepEqual(
      written.map((r) => r.seq).sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    const result = await verifyAudit(storage, trust);
    assert.equal(result.ok, true, JSON.stringify(result.problems));
    assert.equal(result.signedRecords, 8);
  });

  /** A writer's claim (its signature) on `seq` without its record, `ageMs` old; returns the record it would have written. */
  const claim = async (seq: number, prevHash: string, ageMs: number): Promise<{ record: AuditRecord; text: string }> => {
    const dead = forge(seq, prevHash, { operation: 'create' });
    await storage.putBytes(signatureKey(auditKey(seq)), await signDetached(Buffer.from(dead.text), signer, auditKey(seq)));
    const at = new Date(Date.now() - ageMs);
    utimesSync(join(root, signatureKey(auditKey(seq))), at, at);
    return dead;
  };

  test("write-once: a dead writer's claim is passed over, and the next record says so, signed", async () => {
    const records = await appendFive();
    await claim(6, records[4]!.hash, 60_000); // died between its two puts a minute ago
    const next = await appendAudit(storage, entry('verify'), signer);
    assert.equal(next.seq, 7);
    assert.deepEqual(next.skipped, [6]);
    assert.equal(next.prevHash, records[4]!.hash, 'it chains to the record before the dead claim');
    const result = await verifyAudit(storage, trust);
    assert.equal(result.ok, true, JSON.stringify(result.problems));
    assert.equal(result.head?.seq, 7);
    // Appends go on normally after it (the search finds the claim as a taken number).
    assert.equal((await appendAudit(storage, entry('monitor'), signer)).seq, 8);
    assert.equal((await verifyAudit(storage, trust)).ok, true);
  });

  test('a claim still in progress is waited for, then gone on top of', async () => {
    const records = await appendFive();
    const inProgress = await claim(6, records[4]!.hash, 0);
    const appending = appendAudit(storage, entry('verify'), signer);
    await new Promise((resolve) => setTimeout(resolve, 400));
    await storage.putBytes(auditKey(6), inProgress.text); // its writer commits
    const next = await appending;
    assert.equal(next.seq, 7);
    assert.equal(next.skipped, undefined);
    assert.equal(next.prevHash, inProgress.record.hash);
    assert.equal((await verifyAudit(storage, trust)).ok, true);
  });

  test('a writer that stalled past the limit and commits after being passed over is accepted (signed, chained below)', async () => {
    const records = await appendFive();
    const late = await claim(6, records[4]!.hash, 60_000);
    const next = await appendAudit(storage, entry('verify'), signer);
    assert.deepEqual(next.skipped, [6]);
    await storage.putBytes(auditKey(6), late.text);
    const result = await verifyAudit(storage, trust);
    assert.equal(result.ok, true, JSON.stringify(result.problems));
  });

  test('a deletion cannot hide as a dead claim: a committed record has a head; an anchor on it still fails', async () => {
    const records = await appendFive();
    // The newest record deleted, its signature left, aged: the next append takes it for a dead claim.
    await storage.delete(auditKey(5));
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(root, signatureKey(auditKey(5))), old, old);
    const next = await appendAudit(storage, entry('verify'), signer);
    assert.deepEqual(next.skipped, [5]);
    const result = await verifyAudit(storage, trust);
    assert.deepEqual(
      result.problems.map((p) => [p.seq, p.kind]),
      [[5, 'missing']],
    );
    assert.match(
      result.firstBroken?.reason ?? '',
      /^record 5 was deleted after it was written \(audit\/heads\/000000000005\.json exists\)/,
    );
    // With its head deleted too, only the anchor outside can tell.
    await storage.delete(auditHeadKey(5));
    await storage.delete(signatureKey(auditHeadKey(5)));
    assert.equal((await verifyAudit(storage, trust)).ok, true);
    const anchored = await verifyAudit(storage, trust, { seq: 5, hash: records[4]!.hash });
    assert.equal(anchored.firstBroken?.kind, 'rolled-back');
    assert.match(anchored.firstBroken?.reason ?? '', /but record 6 passes over it as a claim never committed: it was deleted/);
  });

  test('a head planted far ahead (unsigned) is refused as untrusted', async () => {
    await appendAudit(storage, entry('create'), signer);
    await storage.putBytes(auditHeadKey(99), `${JSON.stringify({ seq: 99, hash: 'a'.repeat(64), at: new Date().toISOString() })}\n`);
    const planted = await verifyAudit(storage, trust);
    assert.deepEqual(
      planted.problems.map((p) => [p.key, p.kind]),
      [[auditHeadKey(99), 'untrusted']],
    );
  });
});
