import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isSingleChecksummedFrame } from './zstd.js';

/** A hand-built frame (RFC 8878): magic, descriptor, window byte, blocks, optional 4-byte checksum. */
function frame(
  options: { descriptor?: number; blocks?: { type: number; size: number; last: boolean }[]; checksum?: boolean } = {},
): Buffer {
  const descriptor = options.descriptor ?? 0x04;
  const blocks = options.blocks ?? [{ type: 0, size: 5, last: true }];
  const parts = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, descriptor, 0x58])];
  for (const block of blocks) {
    const header = (block.last ? 1 : 0) | (block.type << 1) | (block.size << 3);
    parts.push(Buffer.from([header & 0xff, (header >> 8) & 0xff, (header >> 16) & 0xff]));
    parts.push(Buffer.alloc(block.type === 1 ? 1 : block.size, 0x61));
  }
  if (options.checksum ?? true) parts.push(Buffer.from([1, 2, 3, 4]));
  return Buffer.concat(parts);
}

describe('isSingleChecksummedFrame: when a successful decompression proves the output', () => {
  test('one frame with a content checksum, raw, RLE and compressed blocks: yes', () => {
    assert.equal(isSingleChecksummedFrame(frame()), true);
    const blocks = [
      { type: 0, size: 7, last: false },
      { type: 1, size: 100_000, last: false },
      { type: 2, size: 300, last: true },
    ];
    assert.equal(isSingleChecksummedFrame(frame({ blocks })), true);
  });

  test('no content checksum, a dictionary, or the reserved bit: no', () => {
    assert.equal(isSingleChecksummedFrame(frame({ descriptor: 0x00, checksum: false })), false);
    assert.equal(isSingleChecksummedFrame(frame({ descriptor: 0x05 })), false);
    assert.equal(isSingleChecksummedFrame(frame({ descriptor: 0x0c })), false);
  });

  test('two frames back to back, trailing bytes, or a truncated frame: no', () => {
    assert.equal(isSingleChecksummedFrame(Buffer.concat([frame(), frame()])), false);
    assert.equal(isSingleChecksummedFrame(Buffer.concat([frame(), Buffer.from([0])])), false);
    const whole = frame({ blocks: [{ type: 0, size: 50, last: true }] });
    for (const cut of [3, 6, 8, 20, whole.length - 1])
      assert.equal(isSingleChecksummedFrame(whole.subarray(0, cut)), false, `cut at ${cut}`);
  });

  test('a reserved block type, a skippable frame, or not zstd at all: no', () => {
    assert.equal(isSingleChecksummedFrame(frame({ blocks: [{ type: 3, size: 5, last: true }] })), false);
    const skippable = frame();
    skippable.writeUInt32LE(0x184d2a50, 0);
    assert.equal(isSingleChecksummedFrame(skippable), false);
    assert.equal(isSingleChecksummedFrame(Buffer.from('-----BEGIN PGP MESSAGE-----')), false);
  });

  test('a frame inside a larger buffer is read at its own offset', () => {
    const inner = frame();
    const outer = Buffer.concat([Buffer.alloc(13, 0xff), inner]);
    assert.equal(isSingleChecksummedFrame(outer.subarray(13)), true);
  });
});
