#!/usr/bin/env node
// Benchmark (issue 5): on one cluster in one run, compare
//   1. pms-backup base-backup (BASE_BACKUP, zstd -1 on the server → OpenPGP → file repository,
//      complete once its stop segment is archived by wal-push)
//   2. pg_basebackup -Ft -X none -D - | zstd -3 -T2 > /dev/null
//   3. pgBackRest full backup, compress-type=zst, repo1-cipher-type=aes-256-cbc
//   4. the floor for ours: pg_basebackup with the same server-side zstd to /dev/null
// then restores of the newest backups (restore --pitr against pgbackrest restore, issue 15),
// and WAL archiving under pgbench: segments/s archived by wal-push vs a plain cp, and the
// .ready backlog at the end. Usage: node bench/base-backup.mjs [pgbench scale=100] [pgbench seconds=30] [rounds=2]
// The archive backlog left by pgbench -i is drained before anything is timed (with -X none the
// stop segment queues behind it, and its archiving competes for the CPU). Each round runs the
// backups back to back after one untimed warm-up; the best time of each, the spread, per-round
// ratios and their median are printed.
// Needs: npm run build, PostgreSQL 15, zstd, gpg, pgbackrest (apt-get install pgbackrest).
import { PG_GID, PG_UID } from './postgres-user.mjs';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startThrowawayCluster } from '../dist/postgres/throwaway-cluster.js';
import { generateGpgKeyPair, signingEnv } from '../dist/testing/gpg-keys.js';
import { binPath } from '../dist/testing/run-cli.js';

const scale = Number(process.argv[2] ?? 100);
const seconds = Number(process.argv[3] ?? 30);
const rounds = Number(process.argv[4] ?? 2);
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
    child.once('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.slice(-800)}`)),
    );
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
chownSync(repo, PG_UID, PG_GID);
// The server's wal-push signs with the key: its OS user must read it.
chownSync(key.privateKeyFile, PG_UID, PG_GID);
const env = {
  BACKUP_REPOSITORY: `file://${repo}`,
  ...signingEnv(key),
  BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
  BACKUP_GPG_KEY_ID: key.fingerprint,
  BACKUP_LOG_DIR: join(work, 'logs'),
};
const walPush = `'${process.execPath}' '${binPath('pms-backup')}' wal-push %p`;
const cluster = await startThrowawayCluster({
  durable: true,
  settings: { archive_mode: 'on', wal_level: 'replica', archive_command: walPush, max_wal_size: '4GB', fsync: true },
  serverEnv: env,
});
try {
  const libpq = cluster.libpqEnv;
  await run(`${PG_BIN}/pgbench`, ['-i', '-q', '-s', String(scale)], { env: libpq });
  await cluster.psql('CHECKPOINT');
  const backlog = async () => Number(await cluster.psql("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"));
  const drain = async () => {
    await cluster.psql('SELECT pg_switch_wal()');
    for (let n = await backlog(); n > 0; n = await backlog()) await sleep(500);
  };
  const drainStart = Date.now();
  await drain();
  const size = await cluster.psql('SELECT pg_size_pretty(sum(pg_database_size(datname))::bigint) FROM pg_database');
  console.log(
    `cluster: pgbench scale ${scale}, ${size}; ${(await run('nproc', [], { stdout: 'pipe' })).trim()} cores; archive backlog after pgbench -i drained in ${((Date.now() - drainStart) / 1000).toFixed(1)} s`,
  );

  const br = join(work, 'pgbackrest');
  mkdirSync(join(br, 'repo'), { recursive: true });
  mkdirSync(join(br, 'log'));
  mkdirSync(join(br, 'lock'));
  writeFileSync(
    join(br, 'pgbackrest.conf'),
    [
      '[global]',
      `repo1-path=${join(br, 'repo')}`,
      'repo1-cipher-type=aes-256-cbc',
      'repo1-cipher-pass=bench-only-not-a-secret',
      'repo1-retention-full=9',
      'compress-type=zst',
      'compress-level=3',
      'process-max=2',
      `log-path=${join(br, 'log')}`,
      `lock-path=${join(br, 'lock')}`,
      'start-fast=y',
      'archive-check=n',
      '[bench]',
      `pg1-path=${cluster.dataDir}`,
      `pg1-port=${cluster.port}`,
      `pg1-socket-path=${cluster.socketDir}`,
      '',
    ].join('\n'),
  );
  await run('chown', ['-R', 'postgres:postgres', br]);
  const conf = [`--config=${join(br, 'pgbackrest.conf')}`, '--stanza=bench'];
  await run('pgbackrest', [...conf, 'stanza-create'], { runAs: 'postgres' });

  // Warm-up, untimed: whichever backup runs first would otherwise pay for reading the data files
  // the benchmark's first round finds outside the page cache.
  await run(`${PG_BIN}/pg_basebackup`, ['-D', '-', '-Ft', '-X', 'none', '--checkpoint=fast'], { env: libpq });
  await drain();
  const times = { ours: [], oursOneWorker: [], plain: [], pgbr: [], floor: [], serverZstd: [] };
  for (let round = 0; round < rounds; round++) {
    times.ours.push(
      await timed('pms-backup base-backup (server zstd -1, OpenPGP AES-256)', () =>
        run(process.execPath, [binPath('pms-backup'), 'base-backup'], {
          env: { ...process.env, ...cluster.postgresEnv, POSTGRES_DB: 'postgres', ...env },
        }),
      ),
    );
    await drain();
    // The same with one server-side zstd thread: on 2 cores two workers, the backend and Node
    // compete (docs/performance.md); interleaved here so both see the same machine.
    times.oursOneWorker.push(
      await timed('pms-backup base-backup, BACKUP_BASE_ZSTD_WORKERS=1', () =>
        run(process.execPath, [binPath('pms-backup'), 'base-backup'], {
          env: { ...process.env, ...cluster.postgresEnv, POSTGRES_DB: 'postgres', ...env, BACKUP_BASE_ZSTD_WORKERS: '1' },
        }),
      ),
    );
    await drain();
    times.plain.push(
      await timed('pg_basebackup -Ft -X none -D - | zstd -3 -T2 > /dev/null', async () => {
        // A real pipe between the two programs, as a shell would make it (not copied through Node).
        const pbb = spawn(`${PG_BIN}/pg_basebackup`, ['-D', '-', '-Ft', '-X', 'none', '--checkpoint=fast'], {
          env: libpq,
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        const zstd = spawn('zstd', ['-3', '-T2', '-q', '-c', '-'], { stdio: [pbb.stdout, 'ignore', 'inherit'] });
        pbb.stdout.destroy();
        const exit = (child, name) =>
          new Promise((resolve, reject) => child.once('close', (c) => (c === 0 ? resolve() : reject(new Error(`${name} exited ${c}`)))));
        await Promise.all([exit(pbb, 'pg_basebackup'), exit(zstd, 'zstd')]);
      }),
    );
    await drain();
    // The floor: pg_basebackup alone, which includes the server's wait for the stop segment to be
    // archived (-X none), polled once a second by PostgreSQL.
    times.floor.push(
      await timed('pg_basebackup -Ft -X none -D - > /dev/null (uncompressed)', () =>
        run(`${PG_BIN}/pg_basebackup`, ['-D', '-', '-Ft', '-X', 'none', '--checkpoint=fast'], { env: libpq }),
      ),
    );
    await drain();
    // The protocol's floor for what ours asks of the server: the same BASE_BACKUP with the same
    // server-side zstd (level 1, BACKUP_BASE_ZSTD_WORKERS' default of 2) to /dev/null. No client
    // speed-up can beat it; --no-manifest because pg_basebackup cannot inject one into a
    // compressed tar on stdout.
    times.serverZstd.push(
      await timed('pg_basebackup --compress=server-zstd:1,workers=2 (floor)', () =>
        run(
          `${PG_BIN}/pg_basebackup`,
          ['-D', '-', '-Ft', '-X', 'none', '--checkpoint=fast', '--compress=server-zstd:level=1,workers=2', '--no-manifest'],
          { env: libpq },
        ),
      ),
    );
    await drain();
    times.pgbr.push(
      await timed('pgBackRest full (zst 3, aes-256-cbc, process-max 2)', () =>
        run('pgbackrest', [...conf, '--type=full', 'backup'], { runAs: 'postgres' }),
      ),
    );
    await drain();
    console.log(
      `round ${round}: ours / pgBackRest = ${(times.ours[round] / times.pgbr[round]).toFixed(2)}; ours / (pg_basebackup | zstd) = ${(times.ours[round] / times.plain[round]).toFixed(2)}; ours / server-zstd floor = ${(times.ours[round] / times.serverZstd[round]).toFixed(2)}; floor / pgBackRest = ${(times.serverZstd[round] / times.pgbr[round]).toFixed(2)}`,
    );
  }
  const best = (k) => Math.min(...times[k]);
  const spread = (k) => `${Math.min(...times[k]).toFixed(2)}-${Math.max(...times[k]).toFixed(2)} s`;
  console.log(
    `best: ours ${spread('ours')}, pg_basebackup|zstd ${spread('plain')}, pg_basebackup alone ${spread('floor')}, server-zstd floor ${spread('serverZstd')}, pgBackRest ${spread('pgbr')}`,
  );
  const ratios = times.ours.map((t, i) => t / times.pgbr[i]).sort((a, b) => a - b);
  const median = ratios.length % 2 ? ratios[(ratios.length - 1) / 2] : (ratios[ratios.length / 2 - 1] + ratios[ratios.length / 2]) / 2;
  const oneWorker = times.oursOneWorker.map((t, i) => t / times.pgbr[i]).sort((a, b) => a - b);
  console.log(`per-round ours (1 zstd worker) / pgBackRest: ${oneWorker.map((r) => r.toFixed(2)).join(', ')}`);
  console.log(`per-round ours / pgBackRest: ${ratios.map((r) => r.toFixed(2)).join(', ')}; median ${median.toFixed(2)} (goal <= 0.5)`);
  console.log(
    `ratio (best): ours / pgBackRest = ${(best('ours') / best('pgbr')).toFixed(2)} (goal <= 0.5); ours / (pg_basebackup | zstd) = ${(best('ours') / best('plain')).toFixed(2)}; (pg_basebackup | zstd) / pgBackRest = ${(best('plain') / best('pgbr')).toFixed(2)}; pg_basebackup alone / pgBackRest = ${(best('floor') / best('pgbr')).toFixed(2)}; server-zstd floor / pgBackRest = ${(best('serverZstd') / best('pgbr')).toFixed(2)}; ours / server-zstd floor = ${(best('ours') / best('serverZstd')).toFixed(2)}`,
  );

  // Restores of the newest backups, interleaved: `restore --pitr` (unpacking and checking only;
  // no replay; sha256, OpenPGP MDC and signature checked) against `pgbackrest restore` into an
  // empty directory.
  const restoreTimes = { ours: [], pgbr: [] };
  const restoreRoot = join(work, 'restores');
  mkdirSync(restoreRoot);
  chownSync(restoreRoot, PG_UID, PG_GID);
  for (let round = 0; round < rounds; round++) {
    const oursDir = join(restoreRoot, `ours-${round}`);
    const pgbrDir = join(restoreRoot, `pgbr-${round}`);
    restoreTimes.ours.push(
      await timed('pms-backup restore --pitr (unpack + checks)', () =>
        run(process.execPath, [binPath('pms-backup'), 'restore', '--pitr', '--target-time', 'latest', '--pgdata', oursDir], {
          env: { ...process.env, ...env, BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile },
        }),
      ),
    );
    mkdirSync(pgbrDir, { mode: 0o700 });
    chownSync(pgbrDir, PG_UID, PG_GID);
    restoreTimes.pgbr.push(
      await timed('pgBackRest restore (process-max 2)', () =>
        run('pgbackrest', [...conf, `--pg1-path=${pgbrDir}`, 'restore'], { runAs: 'postgres' }),
      ),
    );
    rmSync(oursDir, { recursive: true, force: true });
    rmSync(pgbrDir, { recursive: true, force: true });
    console.log(
      `restore round ${round}: ours / pgBackRest = ${(restoreTimes.ours[round] / restoreTimes.pgbr[round]).toFixed(2)} (goal <= 1.0)`,
    );
  }
  const restoreRatios = restoreTimes.ours.map((t, i) => t / restoreTimes.pgbr[i]).sort((a, b) => a - b);
  console.log(
    `restore: ours ${Math.min(...restoreTimes.ours).toFixed(2)}-${Math.max(...restoreTimes.ours).toFixed(2)} s, pgBackRest ${Math.min(...restoreTimes.pgbr).toFixed(2)}-${Math.max(...restoreTimes.pgbr).toFixed(2)} s; per-round ours / pgBackRest: ${restoreRatios.map((r) => r.toFixed(2)).join(', ')}`,
  );

  async function archiving(label, command) {
    await cluster.psql(`ALTER SYSTEM SET archive_command = '${command.replace(/'/g, "''")}'`);
    await cluster.psql('SELECT pg_reload_conf()');
    await drain();
    // Both runs start right after a checkpoint, so both pay the same full-page-write burst.
    await cluster.psql('CHECKPOINT');
    const count = async () => Number(await cluster.psql('SELECT archived_count FROM pg_stat_archiver'));
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
    console.log(
      `${label}: ${tps} tps, WAL generated ${(generated / elapsed).toFixed(2)} seg/s, archived ${(archived / elapsed).toFixed(2)} seg/s, .ready backlog every 5 s: [${samples.join(', ')}]`,
    );
  }
  const walDir = join(work, 'cp-archive');
  mkdirSync(walDir);
  chownSync(walDir, PG_UID, PG_GID);
  await archiving('archive_command = cp        ', `cp %p ${walDir}/%f`);
  await archiving('archive_command = wal-push  ', walPush);
} finally {
  await cluster.destroy();
  key.remove();
  rmSync(work, { recursive: true, force: true });
}
