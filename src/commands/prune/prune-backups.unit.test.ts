import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { logicalDumpKey, manifestKey } from '../../repository/layout.js';
import { writeVerification } from '../../repository/verification-record.js';
import { WAL_HISTORY_PREFIX, WAL_SYSTEM_KEY, walObjectKey } from '../../repository/wal-layout.js';
import { MemoryStorage } from '../../storage/memory/memory-storage.js';
import { backupIdAt, baseManifest, logicalManifest, storeBackup, testSigning } from '../../testing/manifest-fixtures.js';
import { parseWalFileName } from '../../wal/wal-file-name.js';
import { planPrune, pruneBackups } from './prune-backups.js';

const { signer, trust } = await testSigning();
const NOW = new Date('2026-03-01T12:00:00.000Z');
const daysAgo = (days: number, hours = 0): string => new Date(NOW.getTime() - (days * 24 + hours) * 3_600_000).toISOString();

async function keys(storage: MemoryStorage, prefix: string): Promise<string[]> {
  const found: string[] = [];
  for await (const info of storage.list(prefix)) found.push(info.key);
  return found;
}

async function archive(storage: MemoryStorage, names: string[]): Promise<void> {
  for (const name of names) {
    const file = parseWalFileName(name);
    assert.ok(file, name);
    await storage.putBytes(walObjectKey(file, 'ab'.repeat(32)), 'wal');
  }
}

describe('planPrune', () => {
  test('complete backups past retention go, but never the newest of each kind nor the newest verified one', async () => {
    const storage = new MemoryStorage();
    const old = logicalManifest(daysAgo(40));
    const verifiedOld = logicalManifest(daysAgo(35));
    const recent = logicalManifest(daysAgo(3));
    const newest = logicalManifest(daysAgo(1));
    const oldBase = baseManifest(daysAgo(50), { startWalSegment: '000000010000000000000002', stopWalSegment: '000000010000000000000002' });
    for (const m of [old, verifiedOld, recent, newest, oldBase]) await storeBackup(storage, m, signer);
    await writeVerification(storage, { id: verifiedOld.id, ok: true, checks: [], durationSeconds: 5, verifiedAt: daysAgo(34) }, signer);
    const decisions = new Map((await planPrune(storage, trust, 30, NOW)).map((d) => [d.id, `${d.action}: ${d.reason}`]));
    assert.equal(decisions.get(old.id), 'delete: older than 30 days');
    assert.equal(decisions.get(verifiedOld.id), 'keep: newest verified logical backup');
    assert.equal(decisions.get(recent.id), 'keep: within 30 days');
    assert.equal(decisions.get(newest.id), 'keep: newest complete logical backup');
    assert.equal(decisions.get(oldBase.id), 'keep: newest complete base backup', 'the only base backup stays however old');
  });

  test('a failed verification does not protect a backup', async () => {
    const storage = new MemoryStorage();
    const failed = logicalManifest(daysAgo(40));
    await storeBackup(storage, failed, signer);
    await storeBackup(storage, logicalManifest(daysAgo(1)), signer);
    await writeVerification(storage, { id: failed.id, ok: false, checks: [], durationSeconds: 5, verifiedAt: daysAgo(39) }, signer);
    const decision = (await planPrune(storage, trust, 30, NOW)).find((d) => d.id === failed.id);
    assert.equal(decision?.action, 'delete');
  });

  test('an incomplete backup is kept for 24 h (it may still be running), a corrupt one always', async () => {
    const storage = new MemoryStorage();
    const running = backupIdAt(daysAgo(0, 23));
    const leftover = backupIdAt(daysAgo(1, 1));
    const corrupt = backupIdAt(daysAgo(400));
    await storage.putBytes(logicalDumpKey(running), 'partial');
    await storage.putBytes(logicalDumpKey(leftover), 'partial');
    await storage.putBytes(manifestKey(corrupt), 'not json');
    const decisions = new Map((await planPrune(storage, trust, 30, NOW)).map((d) => [d.id, d.action]));
    assert.deepEqual(Object.fromEntries(decisions), { [running]: 'keep', [leftover]: 'delete', [corrupt]: 'keep' });
  });
});

describe('pruneBackups', () => {
  test('--dry-run deletes nothing and reports exactly what a real run then deletes', async () => {
    const storage = new MemoryStorage();
    const old = logicalManifest(daysAgo(40));
    for (const m of [old, logicalManifest(daysAgo(1))]) await storeBackup(storage, m, signer);
    const before = await keys(storage, '');
    let stored = 0;
    for await (const object of storage.list(`backups/${old.id}/`)) stored += object.bytes;
    const dry = await pruneBackups(storage, trust, 30, { dryRun: true, now: NOW });
    assert.deepEqual(await keys(storage, ''), before);
    const real = await pruneBackups(storage, trust, 30, { dryRun: false, now: NOW });
    assert.deepEqual(real.decisions, dry.decisions);
    assert.equal(real.deleted, 1);
    assert.equal(real.bytesFreed, stored, 'data, manifest and its signature');
    assert.deepEqual(await keys(storage, `backups/${old.id}/`), []);
  });

  test('WAL older than the oldest retained base backup goes on every timeline; history files and system.json stay', async () => {
    const storage = new MemoryStorage();
    const expired = baseManifest(daysAgo(40), { startWalSegment: '000000010000000000000002', stopWalSegment: '000000010000000000000002' });
    const kept = baseManifest(daysAgo(10), { startWalSegment: '000000010000000000000005', stopWalSegment: '000000010000000000000005' });
    for (const m of [expired, kept]) await storeBackup(storage, m, signer);
    await archive(storage, [
      '000000010000000000000002',
      '000000010000000000000004',
      '000000010000000000000005',
      '000000010000000000000006',
      '000000010000000000000003.00000028.backup',
      '00000002.history',
    ]);
    await storage.putBytes(WAL_SYSTEM_KEY, '{}');
    const result = await pruneBackups(storage, trust, 30, { dryRun: false, now: NOW });
    assert.equal(result.walKeptFrom, '000000010000000000000005');
    assert.equal(result.walDeleted, 3);
    assert.deepEqual(await keys(storage, 'wal/'), [
      'wal/00000001/000000010000000000000005.zst.gpg',
      'wal/00000001/000000010000000000000006.zst.gpg',
      `${WAL_HISTORY_PREFIX}00000002.history.zst.gpg`,
      WAL_SYSTEM_KEY,
    ]);
  });

  test('after a point-in-time restore, WAL a retained base backup of the newer timeline needs is kept', async () => {
    // Timeline 1 ran to segment 0x40; a restore to an earlier moment promoted timeline 2 at
    // segment 0x10. A base backup of timeline 1 from before the restore (starting at 0x30) is
    // still retained, and so is one of timeline 2 starting at 0x12: its WAL 0x12.. must stay.
    const storage = new MemoryStorage();
    const beforeRestore = baseManifest(daysAgo(5), {
      startWalSegment: '000000010000000000000030',
      stopWalSegment: '000000010000000000000030',
    });
    const afterRestore = baseManifest(daysAgo(2), {
      startWalSegment: '000000020000000000000012',
      stopWalSegment: '000000020000000000000012',
    });
    for (const m of [beforeRestore, afterRestore]) await storeBackup(storage, m, signer);
    await archive(storage, [
      '000000010000000000000011',
      '000000020000000000000011',
      '000000020000000000000012',
      '000000020000000000000013',
    ]);
    const result = await pruneBackups(storage, trust, 30, { dryRun: false, now: NOW });
    assert.equal(result.walKeptFrom, '000000020000000000000012');
    assert.deepEqual(await keys(storage, 'wal/00000002/'), [
      'wal/00000002/000000020000000000000012.zst.gpg',
      'wal/00000002/000000020000000000000013.zst.gpg',
    ]);
  });

  test('without any base backup the WAL archive is left alone', async () => {
    const storage = new MemoryStorage();
    await storeBackup(storage, logicalManifest(daysAgo(1)), signer);
    await archive(storage, ['000000010000000000000002']);
    const result = await pruneBackups(storage, trust, 30, { dryRun: false, now: NOW });
    assert.equal(result.walKeptFrom, null);
    assert.equal(result.walDeleted, 0);
    assert.equal((await keys(storage, 'wal/')).length, 1);
  });

  test('a real run removes uploads abandoned more than 24 h ago and leaves running ones alone', async () => {
    let clock = new Date(NOW.getTime() - 30 * 3_600_000);
    const storage = new MemoryStorage({ now: () => clock });
    const stalled = (): Readable => new Readable({ read() {} });
    const abandoned = storage.put(logicalDumpKey(backupIdAt(daysAgo(1, 6))), stalled());
    abandoned.catch(() => undefined);
    clock = new Date(NOW.getTime() - 3_600_000);
    void storage.put(logicalDumpKey(backupIdAt(daysAgo(0, 1))), stalled()).catch(() => undefined);
    clock = NOW;
    const result = await pruneBackups(storage, trust, 30, { dryRun: false, now: NOW });
    assert.equal(result.abandonedUploadsRemoved, 1);
    assert.equal(storage.incompletePuts, 1);
  });
});
