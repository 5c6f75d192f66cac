import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isPmsError } from '../errors/catalogue.js';
import { SpawnRelay } from '../process/spawn-relay.js';
import { NATIVE_ZSTD, compressFile, decompressToFile, isSingleChecksummedFrame } from './zstd.js';

const dir = mkdtempSync(join(tmpdir(), 'pms-segment-zstd-'));
const relay = new SpawnRelay();
after(() => {
  relay.close();
  rmSync(dir, { recursive: true, force: true });
});

// A segment-sized file: compressible WAL-like pages with incompressible parts.
const segment = Buffer.concat(Array.from({ length: 256 }, (_, i) => Buffer.concat([randomBytes(4096), Buffer.alloc(61_440, i)])));
const path = join(dir, '000000010000000000000001');
writeFileSync(path, segment);

const ways = [
  { name: 'the zstd program, a child of this process', via: undefined, program: true },
  { name: 'the zstd program through the spawn relay', via: { relay, scratchDir: dir }, program: true },
  ...(NATIVE_ZSTD ? [{ name: "zlib's zstd (Node >= 22.15)", via: undefined, program: false }] : []),
];

describe('per-segment zstd (compressFile, decompressToFile)', () => {
  for (const way of ways) {
    test(`${way.name}: a standard frame that zstd -d and we restore byte for byte, no scratch file left`, async () => {
      const frame = await compressFile(path, { level: 1, via: way.via, program: way.program });
      assert.ok(frame.length < segment.length / 2, 'compressed');
      // The WAL read path relies on it (pipeline/open-encrypted.ts readEncryptedToFile).
      assert.ok(isSingleChecksummedFrame(frame), 'one frame carrying its content checksum');
      const cli = spawnSync('zstd', ['-d', '-c'], { input: frame, maxBuffer: 1 << 26 });
      assert.equal(cli.status, 0);
      assert.ok(cli.stdout.equals(segment), 'the zstd program reads the frame');
      const output = join(dir, `restored-${way.via ? 'relay' : way.program ? 'child' : 'zlib'}`);
      await decompressToFile(frame, output, { via: way.via, program: way.program });
      assert.ok(readFileSync(output).equals(segment));
      assert.equal(statSync(output).mode & 0o777, 0o600);
      assert.deepEqual(
        readdirSync(dir).filter((e) => e.startsWith('.pms-zstd-') || e.endsWith('.zst')),
        [],
      );
    });

    test(`${way.name}: a corrupt frame fails and leaves no output`, async () => {
      const frame = await compressFile(path, { level: 1, via: way.via, program: way.program });
      frame[Math.floor(frame.length / 2)]! ^= 0xff;
      const output = join(dir, `corrupt-${way.via ? 'relay' : way.program ? 'child' : 'zlib'}`);
      await assert.rejects(decompressToFile(frame, output, { via: way.via, program: way.program }));
      assert.equal(existsSync(output), false);
      assert.equal(existsSync(`${output}.zst`), false);
    });
  }
});

describe('spawn relay', () => {
  test('a failing program is reported with its exit status and stderr', async () => {
    await assert.rejects(relay.run('zstd', ['-d', '-q', '--', join(dir, 'missing')]), (error) => {
      assert.ok(isPmsError(error, 'PMS_ERR_TOOL_FAILED'));
      assert.match(error.message, /zstd exited with status 1/);
      return true;
    });
  });

  test('a program that does not exist is PMS_ERR_TOOL_MISSING', async () => {
    await assert.rejects(relay.run('pms-no-such-program', []), (error) => isPmsError(error, 'PMS_ERR_TOOL_MISSING'));
  });

  test('an aborted run is PMS_ERR_ABORTED and the program is stopped', async () => {
    const controller = new AbortController();
    const running = relay.run('sleep', ['30'], { signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    const started = Date.now();
    await assert.rejects(running, (error) => isPmsError(error, 'PMS_ERR_ABORTED'));
    assert.ok(Date.now() - started < 5_000);
    // The relay still serves after an abort.
    await relay.run('true', []);
  });

  test('a relay that died fails every pending and later run instead of hanging', async () => {
    const doomed = new SpawnRelay();
    const pending = doomed.run('sleep', ['30']);
    doomed.close();
    // Closing stops what it runs (its parent is gone): the run fails, it does not hang.
    await assert.rejects(pending, (error) => isPmsError(error, 'PMS_ERR_TOOL_FAILED'));
    await assert.rejects(doomed.run('true', []), (error) => isPmsError(error, 'PMS_ERR_TOOL_FAILED'));
  });

  test('children get the allowlisted environment only', async () => {
    process.env['PMS_SECRET_FOR_TEST'] = 'x';
    const fresh = new SpawnRelay();
    try {
      const out = join(dir, 'env');
      await fresh.run('sh', ['-c', `env > ${out}`]);
      const env = readFileSync(out, 'utf8');
      assert.doesNotMatch(env, /PMS_SECRET_FOR_TEST/);
      assert.match(env, /^PATH=/m);
    } finally {
      fresh.close();
      delete process.env['PMS_SECRET_FOR_TEST'];
    }
  });
});
