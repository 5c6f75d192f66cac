import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadBackupConfig, requireRepository } from '../config/config.js';
import { type S3rverHarness, startS3rver } from '../testing/s3rver-harness.js';
import { openStorage } from './open-storage.js';

describe('openStorage', () => {
  let s3: S3rverHarness;
  let root: string;
  before(async () => {
    s3 = await startS3rver();
    root = mkdtempSync(join(tmpdir(), 'pms-open-'));
  });
  after(async () => {
    await s3?.destroy();
    rmSync(root, { recursive: true, force: true });
  });

  it('a file:// BACKUP_REPOSITORY from the environment stores key at <root>/<key>', async () => {
    const storage = openStorage(requireRepository(loadBackupConfig({ BACKUP_REPOSITORY: `file://${root}` }, { repository: true })));
    await storage.probe();
    await storage.putBytes('wal/000000010000000000000001', 'segment');
    assert.equal(readFileSync(join(root, 'wal/000000010000000000000001'), 'utf8'), 'segment');
    await storage.close();
  });

  it("an s3:// BACKUP_REPOSITORY from the harness's environment reaches s3rver under the URL prefix", async () => {
    const storage = openStorage(requireRepository(loadBackupConfig(s3.env('nightly'), { repository: true })));
    try {
      await storage.probe();
      await storage.putBytes('backups/1/manifest.json', '{"id":1}');
      assert.equal(storage.location, `s3://${s3.bucket}/nightly`);
      assert.equal((await storage.getBytes('backups/1/manifest.json')).toString(), '{"id":1}');
    } finally {
      await storage.close();
    }
  });
});
