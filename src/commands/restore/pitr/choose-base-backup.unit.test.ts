import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isPmsError } from '../../../errors/catalogue.js';
import { logicalDumpKey } from '../../../repository/layout.js';
import { MemoryStorage } from '../../../storage/memory/memory-storage.js';
import { backupIdAt, baseManifest, logicalManifest, storeBackup, testSigning } from '../../../testing/manifest-fixtures.js';
import { chooseBaseBackup, parseTargetTime } from './choose-base-backup.js';

const { signer, trust, stranger } = await testSigning();
const WAL = { startWalSegment: '000000010000000000000002', stopWalSegment: '000000010000000000000003' };

describe('parseTargetTime', () => {
  test('latest, and timestamps with Z or a numeric offset, give the instant meant', () => {
    assert.equal(parseTargetTime('latest'), 'latest');
    const cases: Array<[string, string]> = [
      ['2026-11-23T14:06:00Z', '2026-11-23T14:06:00.000Z'],
      ['2026-11-23T14:06:00.250+00:00', '2026-11-23T14:06:00.250Z'],
      ['2026-11-23T14:06:00+05:30', '2026-11-23T08:36:00.000Z'],
      ['2026-11-23 14:06:00-0500', '2026-11-23T19:06:00.000Z'],
      ['2026-11-23T14:06Z', '2026-11-23T14:06:00.000Z'],
      ['2028-02-29T12:00:00Z', '2028-02-29T12:00:00.000Z'],
    ];
    for (const [text, iso] of cases) assert.equal((parseTargetTime(text) as Date).toISOString(), iso, text);
  });

  test('a time without a zone is refused: it would be read in the server’s zone', () => {
    for (const text of ['2026-11-23T14:06:00', '2026-11-23 14:06', 'yesterday', '', 'LATEST']) {
      assert.throws(
        () => parseTargetTime(text),
        (error) => isPmsError(error, 'PMS_ERR_USAGE') && error.message.includes('is not a timestamp with a time zone'),
        JSON.stringify(text),
      );
    }
  });

  test('a bare date is refused although its day looks like an offset (2026-11-23 ends in -23)', () => {
    for (const text of ['2026-11-23', '2026-11', '2026-11-23T']) {
      assert.throws(
        () => parseTargetTime(text),
        (error) => isPmsError(error, 'PMS_ERR_USAGE'),
        text,
      );
    }
  });

  test('a date or time that does not exist is refused instead of rolling over to another day', () => {
    for (const text of [
      '2026-02-30T10:00:00Z',
      '2026-02-29T10:00:00Z',
      '2026-04-31T10:00:00+01:00',
      '2026-11-23T24:00:00Z',
      '2026-13-01T00:00:00Z',
    ]) {
      assert.throws(
        () => parseTargetTime(text),
        (error) => isPmsError(error, 'PMS_ERR_USAGE'),
        text,
      );
    }
  });
});

describe('chooseBaseBackup', () => {
  /** Base backups finishing at 02:02 on Jan 1, 2 and 3; a newer logical and a newer incomplete one. */
  async function repository() {
    const storage = new MemoryStorage();
    const bases = ['2026-01-01T02:00:00.000Z', '2026-01-02T02:00:00.000Z', '2026-01-03T02:00:00.000Z'].map((t) => baseManifest(t, WAL));
    for (const base of bases) await storeBackup(storage, base, signer);
    await storeBackup(storage, logicalManifest('2026-01-04T02:00:00.000Z'), signer);
    await storage.putBytes(logicalDumpKey(backupIdAt('2026-01-05T02:00:00.000Z')), 'interrupted backup data');
    return { storage, bases: bases as [(typeof bases)[0], (typeof bases)[0], (typeof bases)[0]] };
  }

  test('the newest complete base backup that finished before the target is chosen (the least WAL to replay)', async () => {
    const { storage, bases } = await repository();
    assert.equal((await chooseBaseBackup(storage, trust, new Date('2026-01-02T12:00:00Z'))).id, bases[1].id);
    assert.equal(
      (await chooseBaseBackup(storage, trust, new Date('2026-01-09T00:00:00Z'))).id,
      bases[2].id,
      'a newer logical backup is not a candidate',
    );
    assert.equal((await chooseBaseBackup(storage, trust, 'latest')).id, bases[2].id);
  });

  test('a newer base backup signed by a stranger is never chosen', async () => {
    const { storage, bases } = await repository();
    await storeBackup(storage, baseManifest('2026-01-06T02:00:00.000Z', WAL), stranger);
    assert.equal((await chooseBaseBackup(storage, trust, 'latest')).id, bases[2].id);
  });

  test('a backup that finished exactly at the target cannot reach it; one millisecond later can', async () => {
    const { storage, bases } = await repository();
    const finished = new Date(bases[1].finishedAt);
    assert.equal((await chooseBaseBackup(storage, trust, finished)).id, bases[0].id);
    assert.equal((await chooseBaseBackup(storage, trust, new Date(finished.getTime() + 1))).id, bases[1].id);
  });

  test('a target before the end of the oldest base backup is PMS_ERR_NOT_FOUND, naming the earliest restorable time', async () => {
    const { storage, bases } = await repository();
    await assert.rejects(
      chooseBaseBackup(storage, trust, new Date(bases[0].finishedAt)),
      (error) => isPmsError(error, 'PMS_ERR_NOT_FOUND') && error.message.includes('the earliest restorable time'),
    );
    await assert.rejects(
      chooseBaseBackup(new MemoryStorage(), trust, 'latest'),
      (error) => isPmsError(error, 'PMS_ERR_NOT_FOUND') && error.message.includes('run pms-backup base-backup first'),
    );
  });

  test('--base picks that backup, refuses one that finished after the target, and refuses a logical backup', async () => {
    const { storage, bases } = await repository();
    assert.equal((await chooseBaseBackup(storage, trust, new Date('2026-01-09T00:00:00Z'), bases[0].id)).id, bases[0].id);
    await assert.rejects(
      chooseBaseBackup(storage, trust, new Date('2026-01-02T12:00:00Z'), bases[2].id),
      (error) => isPmsError(error, 'PMS_ERR_USAGE') && error.message.includes('choose an earlier base backup or a later target'),
    );
    const logical = backupIdAt('2026-01-04T02:00:00.000Z');
    await assert.rejects(chooseBaseBackup(storage, trust, 'latest', logical), (error) => isPmsError(error, 'PMS_ERR_USAGE'));
  });
});
