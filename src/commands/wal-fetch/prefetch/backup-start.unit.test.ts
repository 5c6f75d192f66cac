import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { backupStartSegment, wantedBefore } from './backup-start.js';

describe('the base backup start segment (prefetcher head start)', () => {
  test("reads backup_label's START WAL LOCATION file, and nothing from anything else", () => {
    const dir = mkdtempSync(join(tmpdir(), 'pms-backup-start-'));
    try {
      assert.equal(backupStartSegment(dir), undefined, 'no backup_label');
      const label = (line: string) =>
        writeFileSync(join(dir, 'backup_label'), `${line}\nCHECKPOINT LOCATION: 0/4000060\nBACKUP METHOD: streamed\nSTART TIMELINE: 1\n`);
      label('START WAL LOCATION: 0/4000028 (file 000000010000000000000004)');
      assert.equal(backupStartSegment(dir), '000000010000000000000004');
      label('START WAL LOCATION: 1/FF000028 (file 0000000300000001000000FF)');
      assert.equal(backupStartSegment(dir), '0000000300000001000000FF');
      for (const bad of [
        'START WAL LOCATION: 0/4000028 (file 00000001000000000000004)',
        'START WAL LOCATION: 0/4000028 (file 000000010000000000000100)',
        'START WAL LOCATION: 0/4000028 (file ../../../etc/passwd)',
        'START WAL LOCATION: 0/4000028',
      ]) {
        label(bad);
        assert.equal(backupStartSegment(dir), undefined, bad);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the mark before the start segment crosses a log file boundary and stays on the timeline', () => {
    assert.equal(wantedBefore('000000010000000000000004'), '000000010000000000000003');
    assert.equal(wantedBefore('000000020000000100000000'), '0000000200000000000000FF');
    assert.equal(wantedBefore('000000010000000000000000'), undefined);
    assert.equal(wantedBefore('00000002.history'), undefined);
  });
});
