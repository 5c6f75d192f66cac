import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { SigningKey } from '../../crypto/signing.js';
import { loadBackupConfig } from '../../config/config.js';
import { FsStorage } from '../../storage/fs/fs-storage.js';
import { baseManifest, storeBackup, storeSealedWal, testSigning } from '../../testing/manifest-fixtures.js';
import { segmentName } from '../../wal/wal-file-name.js';
import { type MonitorCheck, runMonitorChecks } from './monitor-checks.js';

/**
 * monitor's wal-gaps check across a failover, on a file:// repository holding what wal-push
 * leaves (objects sealed in their metadata, one per WAL file name) and a signed base backup
 * manifest. The contents are not WAL: monitor reads only names and seals.
 */

const { signer, stranger, trust } = await testSigning();
const NOW = new Date('2026-12-02T12:00:00.000Z');
const roots: string[] = [];

after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

/** A failover in segment 5: timeline 1 up to 4 (5 only as a .partial), 00000002.history, timeline 2 from 5 on. */
const FAILOVER = [
  ...[2, 3, 4].map((s) => segmentName(1, s)),
  `${segmentName(1, 5)}.partial`,
  '00000002.history',
  ...[5, 6, 7].map((s) => segmentName(2, s)),
];

const archive = (storage: FsStorage, name: string, by: SigningKey = signer): Promise<void> => storeSealedWal(storage, name, by);

/** A repository with a base backup starting in timeline 1's segment 2 and the given WAL files. */
async function repository(names: readonly string[]): Promise<FsStorage> {
  const root = mkdtempSync(join(tmpdir(), 'pms-monitor-wal-'));
  roots.push(root);
  const storage = new FsStorage(root);
  const base = baseManifest('2026-12-02T10:00:00.000Z', { startWalSegment: segmentName(1, 2), stopWalSegment: segmentName(1, 2) });
  await storeBackup(storage, base, signer);
  for (const name of names) await archive(storage, name);
  return storage;
}

async function walGaps(storage: FsStorage): Promise<{ check: MonitorCheck; missing: number | undefined }> {
  const config = loadBackupConfig({ BACKUP_REPOSITORY: storage.location });
  const report = await runMonitorChecks(config, storage, trust, NOW);
  const check = report.checks.find((c) => c.name === 'wal-gaps');
  assert.ok(check, JSON.stringify(report.checks.map((c) => c.name)));
  return { check, missing: report.facts.walGapSegments };
}

describe('monitor wal-gaps: timeline by timeline across a failover', () => {
  test('a clean failover archive passes: timeline 1 to the switch point, 00000002.history, timeline 2', async () => {
    const { check, missing } = await walGaps(await repository(FAILOVER));
    assert.equal(check.ok, true, check.detail);
    assert.match(
      check.detail,
      new RegExp(
        `timeline 1 ${segmentName(1, 2)}\\.\\.${segmentName(1, 4)}, then timeline 2 ${segmentName(2, 5)}\\.\\.${segmentName(2, 7)}`,
      ),
    );
    assert.equal(missing, 0);
  });

  test('the old timeline’s last segment before the switch point missing fails, naming it', async () => {
    const { check, missing } = await walGaps(await repository(FAILOVER.filter((n) => n !== segmentName(1, 4))));
    assert.equal(check.ok, false);
    assert.match(check.detail, new RegExp(`${segmentName(1, 4)} is not archived`));
    assert.equal(missing, 1);
  });

  test('the new timeline’s .history missing fails, naming it (the merged view of segment numbers saw no gap here)', async () => {
    const { check, missing } = await walGaps(await repository(FAILOVER.filter((n) => n !== '00000002.history')));
    assert.equal(check.ok, false);
    assert.match(check.detail, /00000002\.history is not archived/);
    assert.equal(missing, 1);
  });

  test('a segment of the old timeline does not stand in for the new timeline’s segment of the same number', async () => {
    // Timeline 2 branched in segment 3; its 4 and 5 are missing, while timeline 1 (the old
    // primary's WAL past the switch point) holds segments of those numbers. Counting segment
    // numbers over all timelines, as monitor did, saw no gap; recovery would stop at 3.
    const names = [...[2, 3, 4, 5].map((s) => segmentName(1, s)), '00000002.history', segmentName(2, 3), segmentName(2, 6)];
    const { check, missing } = await walGaps(await repository(names));
    assert.equal(check.ok, false);
    assert.match(check.detail, new RegExp(`${segmentName(2, 4)} is not archived; ${segmentName(2, 5)} is not archived`));
    assert.equal(missing, 2);
  });

  test('a planted object fills no gap: a segment sealed by an untrusted key is still missing', async () => {
    const storage = await repository(FAILOVER.filter((n) => n !== segmentName(1, 3)));
    await archive(storage, segmentName(1, 3), stranger);
    const { check } = await walGaps(storage);
    assert.equal(check.ok, false);
    assert.match(check.detail, new RegExp(`${segmentName(1, 3)} is not archived`));
  });
});
