#!/usr/bin/env node
// Per-segment profile (issue 15): pushWalFile and fetchWalFile, whole and stage by stage, in one
// warm process against a file repository, on synthetic 16 MiB segments whose compressibility is
// that of pgbench WAL (~3.4 MB at zstd -1). Prints, per stage, the median wall time, the CPU of
// the whole process (all threads; on Node 20 the zstd program's own CPU is not included) and how
// long the main thread was busy (event-loop utilisation). The first segment warms the JIT and is
// not counted. With [slots], also pushes all segments that many at a time and prints the
// throughput and the main thread's utilisation (near 1: the main thread is the bound).
// Usage: node bench/segment-profile.mjs [segments=12] [slots]   (BENCH_NODE: run it under that Node)
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
if (process.env.BENCH_NODE && process.env.BENCH_NODE !== process.execPath) {
  const { spawnSync } = await import('node:child_process');
  const { status } = spawnSync(process.env.BENCH_NODE, process.argv.slice(1), {
    stdio: 'inherit',
    env: { ...process.env, BENCH_NODE: '' },
  });
  process.exit(status ?? 1);
}
const D = new URL('../dist', import.meta.url).pathname;
const iters = Number(process.argv[2] ?? 12);
const slots = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
const { generateGpgKeyPair, signingEnv } = await import(`${D}/testing/gpg-keys.js`);
const { loadBackupConfig } = await import(`${D}/config/config.js`);
const { loadRecipients, loadDecryptionKeys } = await import(`${D}/crypto/keys.js`);
const { loadSigningKey, loadTrustedSigners } = await import(`${D}/crypto/signing.js`);
const { openStorage } = await import(`${D}/storage/open-storage.js`);
const { pushWalFile } = await import(`${D}/commands/wal-push/push-wal-file.js`);
const { fetchWalFile } = await import(`${D}/commands/wal-fetch/fetch-wal-file.js`);
const { NATIVE_ZSTD, compressFile, decompressToFile } = await import(`${D}/compression/zstd.js`);
const { encryptBytes, decryptBytes, encryptBytesWithOpenPgp, decryptBytesWithOpenPgp } = await import(`${D}/crypto/stream-cipher.js`);
const { SpawnRelay } = await import(`${D}/process/spawn-relay.js`);
const work = mkdtempSync(join(tmpdir(), 'pms-prof-'));
const key = await generateGpgKeyPair({ name: 'Prof' });
const env = {
  BACKUP_REPOSITORY: `file://${join(work, 'repo')}`,
  ...signingEnv(key),
  BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
  BACKUP_GPG_KEY_ID: key.fingerprint,
  BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile,
};
mkdirSync(join(work, 'repo'), { mode: 0o700 });
const config = loadBackupConfig(env, { repository: true, encryption: true, signing: true, trust: true, decryption: true });
const recipients = await loadRecipients(config.keys.publicKeyFile, config.keys.keyId);
const signer = await loadSigningKey(config.keys.signingKeyFile, config.keys.signingPassphraseFile);
const trusted = await loadTrustedSigners(config.keys.trustedSignersFile, new Date(), config.keys.walSignerFingerprints);
const keys = await loadDecryptionKeys(config.keys.privateKeyFile, config.keys.passphraseFile);
const storage = openStorage(config.repository);
const relay = NATIVE_ZSTD ? undefined : new SpawnRelay();
const walDir = join(work, 'pg_wal');
mkdirSync(join(walDir, 'scratch'), { recursive: true });
const zstd = relay ? { relay, scratchDir: join(walDir, 'scratch') } : undefined;
// Synthetic segments: a PostgreSQL 15 long page header (magic 0xD110, XLP_LONG_HEADER, this
// timeline and segment, a system identifier, 16 MiB segments, 8 KiB pages), then pages of which
// ~19% is random and the rest a repeating pattern: pgbench WAL's ~3.4 MB at zstd -1.
const SYSTEM_ID = 7000000000000000001n;
const names = Array.from({ length: iters }, (_, i) => `00000001000000000000${(0x10 + i).toString(16).toUpperCase().padStart(4, '0')}`);
const pattern = Buffer.alloc(8192);
for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 31) % 251;
for (const [i, n] of names.entries()) {
  const b = Buffer.alloc(16 * 1024 * 1024);
  for (let off = 0; off < b.length; off += 8192) {
    pattern.copy(b, off);
    randomBytes(1560).copy(b, off + 64 + ((off / 8192) % 4) * 1024);
  }
  b.writeUInt16LE(0xd110, 0);
  b.writeUInt16LE(0x0002, 2);
  b.writeUInt32LE(1, 4);
  b.writeBigUInt64LE(BigInt(0x10 + i) * 16777216n, 8);
  b.writeUInt32LE(0, 16);
  b.writeBigUInt64LE(SYSTEM_ID, 24);
  b.writeUInt32LE(16 * 1024 * 1024, 32);
  b.writeUInt32LE(8192, 36);
  writeFileSync(join(walDir, n), b);
}
const ctx = { storage, recipients, signer, trust: { trusted }, claims: new Map(), zstd };
const med = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)].toFixed(1);
};
const rng = (a) => `${Math.min(...a).toFixed(0)}-${Math.max(...a).toFixed(0)}`;
async function measure(label, fn) {
  const wall = [],
    cpu = [],
    elu = [];
  for (let i = 0; i < names.length; i++) {
    const e0 = performance.eventLoopUtilization();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn(names[i], i);
    const t = performance.now() - t0;
    const c = process.cpuUsage(c0);
    const e = performance.eventLoopUtilization(e0);
    if (i === 0) continue; // JIT warm-up
    wall.push(t);
    cpu.push((c.user + c.system) / 1000);
    elu.push(e.active);
  }
  console.log(`${label.padEnd(34)} wall ${med(wall)} (${rng(wall)})  cpu(all threads) ${med(cpu)}  main-thread busy ${med(elu)} ms`);
}
console.log(`node ${process.version} NATIVE_ZSTD=${NATIVE_ZSTD} segments=${names.length - 1} measured (first is warm-up)`);
await measure('pushWalFile (whole)', (n) => pushWalFile(ctx, join(walDir, n)));
if (slots !== undefined) {
  // 2 at a time over fresh copies: is the main thread the bound?
  rmSync(join(work, 'repo'), { recursive: true });
  mkdirSync(join(work, 'repo'), { mode: 0o700 });
  const ctx2 = { ...ctx, claims: new Map() };
  const e0 = performance.eventLoopUtilization();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  const slot = async () => {
    while (next < names.length) {
      const n = names[next++];
      await pushWalFile(ctx2, join(walDir, n));
    }
  };
  await Promise.all(Array.from({ length: slots }, slot));
  const t = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const e = performance.eventLoopUtilization(e0);
  console.log(
    `${slots} at a time: ${names.length} pushes in ${t.toFixed(0)} ms = ${(t / names.length).toFixed(1)} ms/segment; CPU ${((c.user + c.system) / 1000 / names.length).toFixed(1)} ms/segment; main-thread utilisation ${e.utilization.toFixed(2)}`,
  );
}
const plain = readFileSync(join(walDir, names[0]));
let comp;
await measure('  sha256 16 MiB buffer', () => createHash('sha256').update(plain).digest('hex'));
/** Reads a file in 1 MiB reads into one reused buffer and hashes it, as wal-push and the prefetcher do. */
async function readAndHash(path) {
  const h = await open(path);
  const c = Buffer.allocUnsafe(1 << 20);
  const hash = createHash('sha256');
  let p = 0;
  for (;;) {
    const { bytesRead } = await h.read(c, 0, c.length, p);
    if (!bytesRead) break;
    hash.update(c.subarray(0, bytesRead));
    p += bytesRead;
  }
  await h.close();
  return hash.digest('hex');
}
await measure('  read+sha256 file (1 MiB reads)', (n) => readAndHash(join(walDir, n)));
await measure('  compressFile level 1', async (n) => {
  comp = await compressFile(join(walDir, n), { level: 1, via: zstd });
});
console.log(`  compressed bytes ${comp.length}`);
let enc;
// The same work by openpgp.js alone (encryptBytes/decryptBytes before issue 15's node:crypto
// path, and still their fallback), then the node:crypto path, in the same process.
if (encryptBytesWithOpenPgp) {
  let old;
  await measure('  openpgp.js encrypt (sign+encrypt)', async () => {
    old = await encryptBytesWithOpenPgp(comp, recipients, { signer, objectKey: 'k' });
  });
  await measure('  openpgp.js decrypt (decrypt+verify)', async () => {
    await decryptBytesWithOpenPgp(old, keys, { trusted, objectKey: 'k' });
  });
}
await measure('  encryptBytes (sign+encrypt)', async () => {
  enc = await encryptBytes(comp, recipients, { signer, objectKey: 'k' });
});
await measure('  sha256 of ciphertext', () => createHash('sha256').update(enc).digest('hex'));
let frame;
await measure('  decryptBytes (decrypt+verify)', async () => {
  frame = (await decryptBytes(enc, keys, { trusted, objectKey: 'k' })).plaintext;
});
await measure('  decompressToFile', async (_n, i) => {
  const o = join(work, `d${i}`);
  await decompressToFile(frame, o, { via: zstd });
});
await measure('  read+sha256 decompressed file', (_n, i) => readAndHash(join(work, `d${i}`)));
await measure('  fsync of the 16 MiB file', async (_n, i) => {
  const h = await open(join(work, `d${i}`), 'r+');
  await h.sync();
  await h.close();
});
const fetchDir = join(work, 'fetch');
mkdirSync(fetchDir);
await measure('fetchWalFile (whole)', (n) =>
  fetchWalFile({ storage, keys, trust: { trusted }, name: n, destination: join(fetchDir, n), systemIdentifier: String(SYSTEM_ID), zstd }),
);
relay?.close();
await storage.close();
rmSync(work, { recursive: true, force: true });
key.remove();
