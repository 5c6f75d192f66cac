import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { isPmsError } from '../../errors/catalogue.js';
import { FsStorage } from './fs-storage.js';

test('writers racing for one write-once key: the object that wins keeps metadata (archive_mode = always pushes one segment from several members)', async () => {
  const root = mkdtempSync(join(tmpdir(), 'pms-fs-race-'));
  try {
    const storage = new FsStorage(root);
    for (let round = 0; round < 20; round += 1) {
      const key = `wal/00000001/seg-${round}`;
      const outcomes = await Promise.all(
        Array.from({ length: 3 }, (_, writer) =>
          storage
            .put(key, Readable.from([Buffer.alloc(64 * 1024, writer)]), { ifAbsent: true, metadata: { 'pms-writer': String(writer) } })
            .then(
              () => 'stored',
              (error: unknown) => {
                if (isPmsError(error, 'PMS_ERR_TARGET_EXISTS')) return 'exists';
                throw error;
              },
            ),
        ),
      );
      assert.equal(outcomes.filter((o) => o === 'stored').length, 1, `round ${round}: one writer wins`);
      const head = await storage.head(key);
      assert.ok(head?.metadata['pms-writer'] !== undefined, `round ${round}: the stored object has its metadata`);
      const winner = head.metadata['pms-writer'];
      const chunks: Buffer[] = [];
      for await (const c of await storage.get(key)) chunks.push(c as Buffer);
      assert.equal(Buffer.concat(chunks)[0], Number(winner), `round ${round}: the metadata is the stored bytes' own`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
