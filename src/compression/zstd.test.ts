import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isPmsError } from '../errors/catalogue.js';
import { parseZstdCounts, startPipedCompressor, startPipedDecompressor } from './zstd.js';

const dir = mkdtempSync(join(tmpdir(), 'pms-zstd-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function drain(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('zstd reading another program directly', () => {
  test('reports the exact plain and compressed sizes, and the output decompresses to the input', async () => {
    // Compressible and incompressible parts, larger than one zstd job, odd length.
    const input = Buffer.concat([Buffer.from('vital-signs,'.repeat(900_000)), randomBytes(3_000_001)]);
    const file = join(dir, 'input');
    writeFileSync(file, input);
    const producer = spawn('cat', [file], { stdio: ['ignore', 'pipe', 'inherit'] });
    const zstd = startPipedCompressor(producer.stdout, { level: 1, threads: 2 });
    const output = await drain(zstd.child.stdout!);
    await zstd.done;
    assert.deepEqual(zstd.counts(), { plain: input.length, compressed: output.length });
    const back = spawnSync('zstd', ['-d', '-q', '-c'], { input: output, maxBuffer: 1 << 26 });
    assert.equal(back.status, 0);
    assert.ok(back.stdout.equals(input), 'round trip');
  });

  test('an empty input is counted as 0 bytes', async () => {
    const producer = spawn('true', [], { stdio: ['ignore', 'pipe', 'inherit'] });
    const zstd = startPipedCompressor(producer.stdout, { level: 1 });
    const output = await drain(zstd.child.stdout!);
    await zstd.done;
    assert.deepEqual(zstd.counts(), { plain: 0, compressed: output.length });
  });

  test('if zstd dies, the producer gets a broken pipe instead of blocking (our handle is closed)', async () => {
    const producer = spawn('yes', ['telemetry'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const exited = new Promise<string>((resolve) => producer.once('close', (code, signal) => resolve(signal ?? `exit ${code}`)));
    const zstd = startPipedCompressor(producer.stdout, { level: 1 });
    zstd.child.stdout!.resume();
    zstd.child.kill('SIGKILL');
    await assert.rejects(zstd.done, (error: unknown) => isPmsError(error, 'PMS_ERR_TOOL_FAILED'));
    const timeout = setTimeout(() => producer.kill('SIGKILL'), 10_000);
    // EPIPE (exit 1) or SIGPIPE, depending on the program; either way it did not block.
    assert.match(await exited, /^(SIGPIPE|exit [1-9]\d*)$/);
    clearTimeout(timeout);
  });

  test('counts come only from a summary line we understand; anything else is refused', () => {
    assert.deepEqual(
      parseZstdCounts('Using stdin for input \n/*stdin*\\            : 29.72%   (409994468 B => 121865800 B, /*stdout*\\) \n'),
      {
        plain: 409994468,
        compressed: 121865800,
      },
    );
    assert.deepEqual(parseZstdCounts('/*stdin*\\            : 29.72%   (409994468 => 121865800 bytes, /*stdout*\\) \n'), {
      plain: 409994468,
      compressed: 121865800,
    });
    assert.throws(
      () => parseZstdCounts('/*stdin*\\ : 29.72%   (391 MiB => 116 MiB, /*stdout*\\)'),
      (error: unknown) => isPmsError(error, 'PMS_ERR_TOOL_FAILED'),
    );
    assert.throws(
      () => parseZstdCounts(''),
      (error: unknown) => isPmsError(error, 'PMS_ERR_TOOL_FAILED'),
    );
  });
});

describe('zstd -d writing into another program directly', () => {
  test('the reader gets every byte, end-of-file when zstd ends, and the exact size is reported', async () => {
    const input = Buffer.concat([Buffer.from('heart-rate,'.repeat(700_000)), randomBytes(2_000_003)]);
    const compressed = spawnSync('zstd', ['-1', '-q', '-c'], { input, maxBuffer: 1 << 26 }).stdout;
    // sha256sum stands in for tar: a program reading its stdin to the end.
    const reader = spawn('sha256sum', ['-b', '-'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const zstd = startPipedDecompressor(reader.stdin);
    zstd.child.stdin!.end(compressed);
    const [digest] = await Promise.all([drain(reader.stdout), zstd.done]);
    const expected = spawnSync('sha256sum', ['-b', '-'], { input }).stdout.toString();
    assert.equal(digest.toString(), expected);
    assert.equal(zstd.plainBytes(), input.length);
  });

  test('a corrupt frame fails zstd (non-zero) and the reader still ends', async () => {
    const compressed = spawnSync('zstd', ['-1', '-q', '-c'], { input: randomBytes(500_000) }).stdout;
    compressed.writeUInt8(compressed.readUInt8(compressed.length >> 1) ^ 0xff, compressed.length >> 1);
    const reader = spawn('wc', ['-c'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const zstd = startPipedDecompressor(reader.stdin);
    zstd.child.stdin!.end(compressed);
    await assert.rejects(zstd.done, (error: unknown) => isPmsError(error, 'PMS_ERR_TOOL_FAILED'));
    await drain(reader.stdout);
    assert.throws(
      () => zstd.plainBytes(),
      (error: unknown) => isPmsError(error, 'PMS_ERR_TOOL_FAILED'),
    );
  });
});
