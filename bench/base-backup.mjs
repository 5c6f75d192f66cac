#!/usr/bin/env node
// Benchmark (issue 5): on one cluster in one run, compare
//   1. pms-backup base-backup (pg_basebackup tar → zstd -3 → OpenPGP → file repository)
//   2. pg_basebackup -Ft -X none -D - | zstd -3 -T2 > /dev/null
//   3. pgBackRest full backup, compress-type=zst, repo1-cipher-type=aes-256-cbc
// and WAL archiving under pgbench: segments/s archived by wal-push vs a plain cp, and the
// .ready backlog at the end. Usage: node bench/base-backup.mjs [pgbench scale=100] [pgbench seconds=30]
// Needs: npm run build, PostgreSQL 15, zstd, gpg, pgbackrest (apt-get install pgbackrest).
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startThrowawayCluster } from '../dist/postgres/throwaway-cluster.js';
import { generateGpgKeyPair } from '../dist/testing/gpg-keys.js';
import { binPath } from '../dist/testing/run-cli.js';

const scale = Number(process.argv[2] ?? 100);
const seconds = Number(process.argv[3] ?? 30);
const PG_BIN = '/usr/lib/postgresql/15/bin';

function run(cmd, args, { env, runAs, stdout = 'ignore', pipeTo } = {}) {
  return new Promise((resolve, reject) => {
    const [file, argv] = runAs ? ['runuser', ['-u', runAs, '--', cmd, ...args]] : [cmd, args];
    const child = spawn(file, argv, { env: env ?? process.env, stdio: ['ignore', pipeTo ? 'pipe' : stdout, 'pipe'] });
    let err = '';
    let out = '';
    child.stderr.on('data', (c) => (err += c));
    if (pipeTo) child.stdout.pipe(pipeTo.stdin);
    else if (stdout === 'pipe') child.stdout.on('data', (c) => (out += c));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.slice(-800)}`))));
  });
}

async function timed(label, fn) {
  const t = process.hrtime.bigint();
  await fn();
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  console.log(`${label.padEnd(58)} ${s.toFixed(2)} s`);
  return s;
}

const work = mkdtempSync(join(tmpdir(), 'pms-bench-base-'));
chmodSync(work, 0o755);
const key = await generateGpgKeyPair({ name: 'PMS Bench' });
const repo = join(work, 'repo');
mkdirSync(repo, { mode: 0o700 });
chownSync(repo, 101, 104);
const env = { BACKUP_REPOSITORY: `file://${repo}`, BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile, BACKUP_GPG_KEY_ID: key.fingerprint, BACKUP_LOG_DIR: join(work, 'logs') };
const walPush = `'${process.execPath}' '${binPath('pms-backup')}' wal-push %p`;
const cluster = await startThrowawayCluster({ durable: true, settings: { archive_mode: 'on', wal_level: 'replica', archive_command: walPush, max_wal_size: '4GB', fsync: true }, serverEnv: env });
try {
  const libpq = cluster.libpqEnv;
  await run(`${PG_BIN}/pgbench`, ['-i', '-q', '-s', String(scale)], { env: libpq });
  await cluster.psql('CHECKPOINT');
  const size = await cluster.psql("SELECT pg_size_pretty(sum(pg_database_size(datname))::bigint) FROM pg_database");
  console.log(`cluster: pgbench scale ${scale}, ${size}; ${(await run('nproc', [], { stdout: 'pipe' })).trim()} cores`);

  const ours = await timed('pms-backup base-backup (zstd -3 + OpenPGP AES-256)', () => run(process.execPath, [binPath('pms-backup'), 'base-backup'], { env: { ...process.env, ...cluster.postgresEnv, POSTGRES_DB: 'postgres', ...env } }));

  const plain = await timed('pg_basebackup -Ft -X none -D - | zstd -3 -T2 > /dev/null', async () => {
    const zstd = spawn('zstd', ['-3', '-T2', '-q', '-c', '-'], { stdio: ['pipe', 'ignore', 'inherit'] });
    const done = new Promise((resolve, reject) => zstd.once('close', (c) => (c === 0 ? resolve() : reject(new Error(`zstd ${c}`)))));
    await run(`${PG_BIN}/pg_basebackup`, ['-D', '-', '-Ft', '-X', 'none', '--checkpoint=fast'], { env: libpq, pipeTo: zstd });
    await done;
  });

  const br = join(work, 'pgbackrest');
  mkdirSync(join(br, 'repo'), { recursive: true });
  mkdirSync(join(br, 'log'));
  mkdirSync(join(br, 'lock'));
  writeFileSync(join(br, 'pgbackrest.conf'), [
    '[global]', `repo1-path=${join(br, 'repo')}`, 'repo1-cipher-type=aes-256-cbc', 'repo1-cipher-pass=bench-only-not-a-secret',
    'compress-type=zst', 'compress-level=3', 'process-max=2', `log-path=${join(br, 'log')}`, `lock-path=${join(br, 'lock')}`, 'start-fast=y', 'archive-check=n',
    '[bench]', `pg1-path=${cluster.dataDir}`, `pg1-port=${cluster.port}`, `pg1-socket-path=${cluster.socketDir}`, '',
  ].join('\n'));
  await run('chown', ['-R', 'postgres:postgres', br]);
  const conf = [`--config=${join(br, 'pgbackrest.conf')}`, '--stanza=bench'];
  await run('pgbackrest', [...conf, 'stanza-create'], { runAs: 'postgres' });
  const pgbr = await timed('pgBackRest full (zst 3, aes-256-cbc, process-max 2)', () => run('pgbackrest', [...conf, '--type=full', 'backup'], { runAs: 'postgres' }));
  console.log(`ratio: ours / pgBackRest = ${(ours / pgbr).toFixed(2)} (goal <= 0.5); ours / (pg_basebackup | zstd) = ${(ours / plain).toFixed(2)}`);

  async function archiving(label, command) {
    await cluster.psql(`ALTER SYSTEM SET archive_command = '${command.replace(/'/g, "''")}'`);
    await cluster.psql('SELECT pg_reload_conf()');
    await cluster.psql('SELECT pg_switch_wal()');
    await sleep(2000);
    const count = async () => Number(await cluster.psql('SELECT archived_count FROM pg_stat_archiver'));
    const backlog = async () => Number(await cluster.psql("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"));
    const before = await count();
    const lsn0 = await cluster.psql('SELECT pg_current_wal_lsn()');
    const t = Date.now();
    const samples = [];
    const bench = run(`${PG_BIN}/pgbench`, ['-c', '4', '-j', '2', '-T', String(seconds), '-n'], { env: libpq, stdout: 'pipe' });
    while (Date.now() - t < seconds * 1000) {
      await sleep(5000);
      samples.push(await backlog());
    }
    const out = await bench;
    const elapsed = (Date.now() - t) / 1000;
    const generated = Number(await cluster.psql(`SELECT (pg_current_wal_lsn() - '${lsn0}'::pg_lsn) / (16*1024*1024)`));
    const archived = (await count()) - before;
    const tps = /tps = ([\d.]+)/.exec(out)?.[1];
    console.log(`${label}: ${tps} tps, WAL generated ${(generated / elapsed).toFixed(2)} seg/s, archived ${(archived / elapsed).toFixed(2)} seg/s, .ready backlog every 5 s: [${samples.join(', ')}]`);
  }
  const walDir = join(work, 'cp-archive');
  mkdirSync(walDir);
  chownSync(walDir, 101, 104);
  await archiving('archive_command = cp        ', `cp %p ${walDir}/%f`);
  await archiving('archive_command = wal-push  ', walPush);
} finally {
  await cluster.destroy();
  key.remove();
  rmSync(work, { recursive: true, force: true });
}
