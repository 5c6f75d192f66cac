import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildArchiveBacklogRegistry } from '../metrics/archive-backlog-metrics.js';
import { archiveBacklog, readyFiles } from './archive-status.js';

const walDir = mkdtempSync(join(tmpdir(), 'pms-archive-status-'));
mkdirSync(join(walDir, 'archive_status'));
after(() => rmSync(walDir, { recursive: true, force: true }));

function mark(name: string, suffix: 'ready' | 'done', at: Date): void {
  const path = join(walDir, 'archive_status', `${name}.${suffix}`);
  writeFileSync(path, '');
  utimesSync(path, at, at);
}

describe('archive backlog', () => {
  const now = new Date('2026-12-02T12:00:00Z');
  mark('000000010000000000000003', 'ready', new Date(now.getTime() - 90_000));
  mark('000000010000000000000002', 'ready', new Date(now.getTime() - 600_000));
  mark('00000002.history', 'ready', new Date(now.getTime() - 30_000));
  mark('000000010000000000000001', 'done', new Date(now.getTime() - 3_600_000));
  writeFileSync(join(walDir, 'archive_status', 'not-wal.ready'), '');

  test('lists .ready WAL files as PostgreSQL archives them: history first, then oldest; .done and foreign names are not backlog', async () => {
    assert.deepEqual(await readyFiles(walDir), ['00000002.history', '000000010000000000000002', '000000010000000000000003']);
  });

  test('counts the backlog and the age of its oldest file, and exposes both as gauges', async () => {
    const backlog = await archiveBacklog(walDir, now);
    assert.deepEqual(backlog, { readyFiles: 3, oldestReadySeconds: 600 });
    const text = await buildArchiveBacklogRegistry(backlog).metrics();
    assert.match(text, /^pms_backup_wal_archive_ready_files 3$/m);
    assert.match(text, /^pms_backup_wal_archive_oldest_ready_seconds 600$/m);
  });

  test('an empty or missing archive_status is a backlog of 0', async () => {
    assert.deepEqual(await archiveBacklog(join(walDir, 'nowhere'), now), { readyFiles: 0, oldestReadySeconds: 0 });
  });
});
