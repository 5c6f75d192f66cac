import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PmsError, isPmsError } from '../errors/catalogue.js';
import { MemoryStorage } from '../storage/memory/memory-storage.js';
import { backupIdAt, baseManifest, logicalManifest, storeBackup, testSigning } from '../testing/manifest-fixtures.js';
import { listBackups, readManifest, resolveBackup } from './backup-catalog.js';
import { backupPrefix, logicalDumpKey, manifestKey } from './layout.js';
import { putSignedRecord } from './signed-record.js';

const { signer, trust, stranger } = await testSigning();

const WAL = { startWalSegment: '000000010000000000000002', stopWalSegment: '000000010000000000000002' };

/** A repository with one backup in each state, ids chosen so that id order and time order agree. */
async function mixedRepository() {
  const storage = new MemoryStorage();
  const oldLogical = logicalManifest('2026-01-01T02:00:00.000Z');
  const base = baseManifest('2026-01-02T02:00:00.000Z', WAL);
  const newLogical = logicalManifest('2026-01-03T02:00:00.000Z');
  for (const m of [oldLogical, base, newLogical]) await storeBackup(storage, m, signer);
  // Newer than every complete one: an interrupted backup (data, no manifest) and a damaged one.
  const interrupted = backupIdAt('2026-01-04T02:00:00.000Z');
  await storage.putBytes(logicalDumpKey(interrupted), Buffer.alloc(700));
  // Signed by our own key, so it is corrupt rather than untrusted: truncated before it was signed.
  const damaged = backupIdAt('2026-01-05T02:00:00.000Z');
  await storage.putBytes(logicalDumpKey(damaged), Buffer.alloc(300));
  await putSignedRecord(storage, manifestKey(damaged), '{"formatVersion":1,', signer);
  return { storage, oldLogical, base, newLogical, interrupted, damaged };
}

describe('listBackups', () => {
  test('every backup appears once, newest first, as complete, incomplete (no manifest) or corrupt', async () => {
    const { storage, oldLogical, base, newLogical, interrupted, damaged } = await mixedRepository();
    const entries = await listBackups(storage, trust);
    assert.deepEqual(
      entries.map((e) => [e.id, e.status, e.kind]),
      [
        [damaged, 'corrupt', 'unknown'],
        [interrupted, 'incomplete', 'unknown'],
        [newLogical.id, 'complete', 'logical'],
        [base.id, 'complete', 'base'],
        [oldLogical.id, 'complete', 'logical'],
      ],
    );
  });

  test('a complete backup reports the manifest’s stored bytes; others the bytes lying in the repository', async () => {
    const { storage, newLogical, interrupted, damaged } = await mixedRepository();
    const byId = new Map((await listBackups(storage, trust)).map((e) => [e.id, e]));
    assert.equal(byId.get(newLogical.id)?.bytes, newLogical.bytes.stored);
    assert.equal(byId.get(newLogical.id)?.tables, 1);
    assert.equal(byId.get(newLogical.id)?.database, 'patient_telemetry');
    assert.equal(byId.get(interrupted)?.bytes, 700);
    assert.equal(byId.get(interrupted)?.createdAt, '2026-01-04T02:00:00.000Z', 'the time in the id');
    let lying = 0;
    for await (const object of storage.list(backupPrefix(damaged))) lying += object.bytes;
    assert.equal(byId.get(damaged)?.bytes, lying, 'dump, manifest and its signature');
    assert.match(byId.get(damaged)?.problem ?? '', /not valid JSON/);
  });

  test('keys under backups/ that are not backup ids, and objects outside backups/, are not backups', async () => {
    const storage = new MemoryStorage();
    await storage.putBytes('backups/README.txt', 'x');
    await storage.putBytes('backups/20260101T020000Z/manifest.json', '{}');
    await storage.putBytes('backups/20260101T020000Z-ABCD/manifest.json', '{}');
    await storage.putBytes('wal/system.json', '{}');
    await storage.putBytes('audit/000000000001.json', '{}');
    assert.deepEqual(await listBackups(storage, trust), []);
  });

  test('two backups started in the same second are both listed, ordered by id', async () => {
    const storage = new MemoryStorage();
    const a = logicalManifest('2026-01-01T02:00:00.000Z', { id: backupIdAt('2026-01-01T02:00:00.000Z', '0a0a') });
    const b = logicalManifest('2026-01-01T02:00:00.000Z', { id: backupIdAt('2026-01-01T02:00:00.000Z', 'ffff') });
    await storeBackup(storage, a, signer);
    await storeBackup(storage, b, signer);
    assert.deepEqual(
      (await listBackups(storage, trust)).map((e) => e.id),
      [b.id, a.id],
    );
  });

  test('a failure to read the repository is not reported as a corrupt backup', async () => {
    const storage = new MemoryStorage();
    await storeBackup(storage, logicalManifest('2026-01-01T02:00:00.000Z'), signer);
    // Every call goes to the real storage except getBytes, which fails as an unreachable bucket does.
    const failing = new Proxy(storage, {
      get(target, property) {
        if (property === 'getBytes') return async () => Promise.reject(new PmsError('PMS_ERR_REPO_UNAVAILABLE', 'bucket unreachable'));
        const value = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    await assert.rejects(listBackups(failing, trust), (error) => isPmsError(error, 'PMS_ERR_REPO_UNAVAILABLE'));
  });
});

describe('readManifest', () => {
  test('a manifest naming another backup than its folder is PMS_ERR_MANIFEST, even with a valid signature for that key', async () => {
    const storage = new MemoryStorage();
    const real = logicalManifest('2026-01-01T02:00:00.000Z');
    const elsewhere = backupIdAt('2026-02-01T02:00:00.000Z');
    await putSignedRecord(storage, manifestKey(elsewhere), JSON.stringify(real), signer);
    await assert.rejects(
      readManifest(storage, elsewhere, trust),
      (error) => isPmsError(error, 'PMS_ERR_MANIFEST') && error.message.includes(`names backup ${real.id}, not ${elsewhere}`),
    );
    const byId = new Map((await listBackups(storage, trust)).map((e) => [e.id, e.status]));
    assert.equal(byId.get(elsewhere), 'corrupt');
  });
});

describe('trust', () => {
  test('a manifest signed by a stranger or not signed is listed as untrusted, and only ours count as complete', async () => {
    const storage = new MemoryStorage();
    const ours = logicalManifest('2026-01-01T02:00:00.000Z');
    const planted = logicalManifest('2026-01-02T02:00:00.000Z');
    const old = logicalManifest('2026-01-03T02:00:00.000Z');
    await storeBackup(storage, ours, signer);
    await storeBackup(storage, planted, stranger);
    await storeBackup(storage, old, 'unsigned');
    const byId = new Map((await listBackups(storage, trust)).map((e) => [e.id, e]));
    assert.equal(byId.get(ours.id)?.status, 'complete');
    assert.equal(byId.get(ours.id)?.signer, signer.description.fingerprint);
    assert.equal(byId.get(planted.id)?.status, 'untrusted');
    assert.equal(byId.get(planted.id)?.manifest, undefined, 'nothing of a badly signed manifest is shown');
    assert.deepEqual([byId.get(old.id)?.status, byId.get(old.id)?.unsigned], ['untrusted', true]);
  });

  test('latest skips newer untrusted backups; naming one is PMS_ERR_UNTRUSTED unless it is merely unsigned and allowed', async () => {
    const storage = new MemoryStorage();
    const ours = logicalManifest('2026-01-01T02:00:00.000Z');
    const planted = logicalManifest('2026-01-02T02:00:00.000Z');
    const old = logicalManifest('2026-01-03T02:00:00.000Z');
    await storeBackup(storage, ours, signer);
    await storeBackup(storage, planted, stranger);
    await storeBackup(storage, old, 'unsigned');
    assert.equal((await resolveBackup(storage, 'latest', 'logical', trust)).id, ours.id);
    await assert.rejects(resolveBackup(storage, planted.id, 'logical', trust), (error) => isPmsError(error, 'PMS_ERR_UNTRUSTED'));
    await assert.rejects(resolveBackup(storage, planted.id, 'logical', { ...trust, allowUnsigned: true }), (error) =>
      isPmsError(error, 'PMS_ERR_UNTRUSTED'),
    );
    await assert.rejects(resolveBackup(storage, old.id, 'logical', trust), (error) => isPmsError(error, 'PMS_ERR_UNTRUSTED'));
    assert.equal((await resolveBackup(storage, old.id, 'logical', { ...trust, allowUnsigned: true })).id, old.id);
  });
});

describe('resolveBackup', () => {
  test('latest is the newest complete backup of the kind, skipping newer incomplete and corrupt ones', async () => {
    const { storage, base, newLogical } = await mixedRepository();
    assert.equal((await resolveBackup(storage, 'latest', 'logical', trust)).id, newLogical.id);
    assert.equal((await resolveBackup(storage, 'latest', 'base', trust)).id, base.id);
  });

  test('an id resolves to that backup only when it is complete and of the asked kind', async () => {
    const { storage, oldLogical, base, interrupted, damaged } = await mixedRepository();
    assert.deepEqual(await resolveBackup(storage, oldLogical.id, 'logical', trust), oldLogical);
    await assert.rejects(resolveBackup(storage, interrupted, 'logical', trust), (error) => isPmsError(error, 'PMS_ERR_INCOMPLETE'));
    await assert.rejects(
      resolveBackup(storage, damaged, 'logical', trust),
      (error) => isPmsError(error, 'PMS_ERR_MANIFEST') && /not valid JSON/.test(error.message),
    );
    await assert.rejects(
      resolveBackup(storage, base.id, 'logical', trust),
      (error) => isPmsError(error, 'PMS_ERR_USAGE') && error.message.includes('is a base backup, not logical'),
    );
    await assert.rejects(
      resolveBackup(storage, backupIdAt('2030-01-01T00:00:00.000Z'), 'logical', trust),
      (error) => isPmsError(error, 'PMS_ERR_NOT_FOUND') && error.message.includes('memory://repository'),
    );
  });

  test('latest in a repository with only incomplete backups is PMS_ERR_NOT_FOUND', async () => {
    const storage = new MemoryStorage();
    await storage.putBytes(logicalDumpKey(backupIdAt('2026-01-04T02:00:00.000Z')), 'partial');
    await assert.rejects(resolveBackup(storage, 'latest', 'logical', trust), (error) => isPmsError(error, 'PMS_ERR_NOT_FOUND'));
  });
});
