import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { FsStorage } from '../storage/fs/fs-storage.js';
import { baseManifest, storeBackup, storeSealedWal, testSigning } from '../testing/manifest-fixtures.js';
import { summarizeWalArchive } from './wal-archive-summary.js';
import { segmentName } from './wal-file-name.js';

/**
 * The gaps `list` and `report` show, on a file:// repository holding what wal-push leaves (one
 * sealed object per WAL file name; the contents are not WAL, only names are read) behind a signed
 * base backup manifest starting in timeline 1's segment 2.
 */

const { signer, trust } = await testSigning();
const roots: string[] = [];
after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

/** A failover in segment 5: timeline 1 up to 4, 00000002.history, timeline 2 from 5 on. */
const FAILOVER = [...[2, 3, 4].map((s) => segmentName(1, s)), '00000002.history', ...[5, 6, 7, 8].map((s) => segmentName(2, s))];

async function gapsOf(names: readonly string[]): Promise<ReadonlyArray<{ from: string; to: string }>> {
  const root = mkdtempSync(join(tmpdir(), 'pms-wal-summary-'));
  roots.push(root);
  const storage = new FsStorage(root);
  await storeBackup(
    storage,
    baseManifest('2026-12-02T10:00:00.000Z', { startWalSegment: segmentName(1, 2), stopWalSegment: segmentName(1, 2) }),
    signer,
  );
  for (const name of names) await storeSealedWal(storage, name, signer);
  return (await summarizeWalArchive(storage, trust)).gaps;
}

describe('the WAL archive summary’s gaps follow the chain timeline by timeline', () => {
  test('a clean failover archive has none', async () => {
    assert.deepEqual(await gapsOf(FAILOVER), []);
  });

  test('a segment missing on the new timeline is a gap even when the old timeline has that number', async () => {
    // Timeline 1 kept writing segment 6 after the switch (a split brain's leftovers): recovery
    // follows timeline 2 and cannot use it.
    const names = [...FAILOVER.filter((n) => n !== segmentName(2, 6)), segmentName(1, 6)];
    assert.deepEqual(await gapsOf(names), [{ from: segmentName(2, 6), to: segmentName(2, 6) }]);
  });

  test('a missing .history file is named, and consecutive missing segments form one run', async () => {
    const names = FAILOVER.filter((n) => n !== '00000002.history' && n !== segmentName(2, 6) && n !== segmentName(2, 7));
    assert.deepEqual(await gapsOf(names), [
      { from: '00000002.history', to: '00000002.history' },
      { from: segmentName(2, 6), to: segmentName(2, 7) },
    ]);
  });

  test('segments missing before a new timeline begins are named on the timeline that had to archive them', async () => {
    const names = FAILOVER.filter((n) => n !== segmentName(1, 3) && n !== segmentName(1, 4));
    assert.deepEqual(await gapsOf(names), [{ from: segmentName(1, 3), to: segmentName(1, 4) }]);
  });
});
