import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Logger } from '../logging/json-log.js';
import { ProgressLine } from './progress.js';

describe('ProgressLine', () => {
  test('writes a progress log line at most every 30 s, whatever the terminal', () => {
    const lines: Array<[string, unknown]> = [];
    const logger: Logger = {
      info: (message, fields) => lines.push([message, fields]),
      warn: () => undefined,
      error: () => undefined,
      file: undefined,
    };
    let clock = 1_000_000;
    const progress = new ProgressLine({ logger, tty: false, now: () => clock });
    progress.update('restoring: 1 MiB of 9 MiB');
    clock += 29_000;
    progress.update('restoring: 4 MiB of 9 MiB');
    assert.deepEqual(lines, [], 'nothing before 30 s');
    clock += 2_000;
    progress.update('restoring: 5 MiB of 9 MiB');
    clock += 1_000;
    progress.update('restoring: 6 MiB of 9 MiB');
    assert.deepEqual(lines, [['progress', { progress: 'restoring: 5 MiB of 9 MiB' }]]);
    clock += 30_000;
    progress.update('restoring: 9 MiB of 9 MiB');
    assert.equal(lines.length, 2);
  });
});
