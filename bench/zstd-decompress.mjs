#!/usr/bin/env node
// Micro-benchmark (issue 15): the cost of decompressing one zstd frame of a WAL segment into a file
// with zlib's zstd (Node >= 22.15), as one 16 MiB output buffer written at once (what the
// prefetcher did before session 10) against 1 MiB pieces written as they come (what it does now).
// Prints CPU (user + system) and wall per segment; run it under the images' Node:
//   /path/to/node24 bench/zstd-decompress.mjs DIR_WITH_SEGMENTS [rounds=2]
// DIR_WITH_SEGMENTS: real 16 MiB WAL files (e.g. a copy of some pg_wal segments).
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';

const dir = process.argv[2];
const rounds = Number(process.argv[3] ?? 2);
if (!dir || typeof zlib.zstdCompressSync !== 'function') {
  console.error('usage: node (>= 22.15) bench/zstd-decompress.mjs DIR_WITH_SEGMENTS [rounds]');
  process.exit(2);
}
const params = { [zlib.constants.ZSTD_c_compressionLevel]: 1, [zlib.constants.ZSTD_c_checksumFlag]: 1 };
const frames = readdirSync(dir)
  .filter((f) => /^[0-9A-F]{24}$/.test(f))
  .map((f) => zlib.zstdCompressSync(readFileSync(join(dir, f)), { params }));
const out = mkdtempSync(join(tmpdir(), 'pms-bench-zstd-'));
async function measure(label, fn) {
  const cpu = process.cpuUsage();
  const wall = performance.now();
  for (let i = 0; i < frames.length; i++) await fn(frames[i], join(out, `s${i}`));
  const used = process.cpuUsage(cpu);
  const per = (us) => (us / 1000 / frames.length).toFixed(1);
  console.log(
    `${label}: cpu ${per(used.user + used.system)} ms (system ${per(used.system)}), wall ${((performance.now() - wall) / frames.length).toFixed(1)} ms per segment`,
  );
  for (let i = 0; i < frames.length; i++) rmSync(join(out, `s${i}`), { force: true });
}
const whole = (frame) =>
  new Promise((resolve, reject) =>
    zlib.zstdDecompress(frame, { maxOutputLength: 64 << 20, chunkSize: (16 << 20) + 65536 }, (e, r) => (e ? reject(e) : resolve(r))),
  );
try {
  console.log(`node ${process.version}, ${frames.length} segments`);
  for (let round = 0; round < rounds; round++) {
    await measure('one 16 MiB buffer, then writeFile', async (frame, path) => writeFileSync(path, await whole(frame)));
    await measure('1 MiB pieces, each written as it comes', async (frame, path) => {
      const fd = openSync(path, 'w');
      try {
        await pipeline(
          Readable.from([frame]),
          zlib.createZstdDecompress({ chunkSize: 1 << 20 }),
          new Writable({
            write(chunk, _encoding, done) {
              writeSync(fd, chunk);
              done();
            },
          }),
        );
      } finally {
        closeSync(fd);
      }
    });
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
