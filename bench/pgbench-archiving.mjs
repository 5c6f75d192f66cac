#!/usr/bin/env node
// Benchmark (issue 15 item 5): pgbench throughput on one cluster in one run with
//   archive_command = cp %p <dir>/%f            (the floor: archiving costs nothing)
//   archive_command = pms-backup wal-push %p    (background pusher, zstd -1, OpenPGP, file repository),
//                     in the deployed shell-first form (src/commands/wal-push/archive-command.ts)
// Each run starts after the backlog is drained and a checkpoint (both pay the same full-page-write
// burst); rounds alternate which goes first. Printed per run: tps, WAL generated and archived per
// second, the .ready backlog every 5 s and how long it took to drain after pgbench ended; then the
// per-round tps ratios and their spread.
// Usage: node bench/pgbench-archiving.mjs [pgbench scale=50] [seconds=30] [rounds=2]
// Needs: npm run build, PostgreSQL 15, zstd, gpg.
import { shellFirstArchiveCommand } from '../dist/commands/wal-push/archive-command.js';
import { PG_GID, PG_UID } from './postgres-user.mjs';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startThrowawayCluster } from '../dist/postgres/throwaway-cluster.js';
import { generateGpgKeyPair, signingEnv } from '../dist/testing/gpg-keys.js';
import { binPath } from '../dist/testing/run-cli.js';
import { BENCH_NODE } from './bench-node.mjs';

const scale = Number(process.argv[2] ?? 50);
const seconds = Number(process.argv[3] ?? 30);
const rounds = Number(process.argv[4] ?? 2);
const PG_BIN = '/usr/lib/postgresql/15/bin';

function run(cmd, args, { env, stdout = 'ignore' } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: env ?? process.env, stdio: ['ignore', stdout, 'pipe'] });
    let err = '';
    let out = '';
    child.stderr.on('data', (c) => (err += c));
    if (stdout === 'pipe') child.stdout.on('data', (c) => (out += c));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.slice(-800)}`)),
    );
  });
}

const work = mkdtempSync(join(tmpdir(), 'pms-bench-pgbench-'));
chmodSync(work, 0o755);
const key = await generateGpgKeyPair({ name: 'PMS Bench' });
const repo = join(work, 'repo');
mkdirSync(repo, { mode: 0o700 });
chownSync(repo, PG_UID, PG_GID);
chownSync(key.privateKeyFile, PG_UID, PG_GID);
const env = {
  BACKUP_REPOSITORY: `file://${repo}`,
  ...signingEnv(key),
  BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
  BACKUP_GPG_KEY_ID: key.fingerprint,
  BACKUP_LOG_DIR: join(work, 'logs'),
};
const walPush = shellFirstArchiveCommand(`'${BENCH_NODE}' '${binPath('pms-backup')}' wal-push`);
const cluster = await startThrowawayCluster({
  durable: true,
  settings: { archive_mode: 'on', wal_level: 'replica', archive_command: walPush, max_wal_size: '4GB', fsync: true },
  serverEnv: env,
});
try {
  const libpq = cluster.libpqEnv;
  await run(`${PG_BIN}/pgbench`, ['-i', '-q', '-s', String(scale)], { env: libpq });
  const backlog = async () => Number(await cluster.psql("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"));
  const drain = async () => {
    await cluster.psql('SELECT pg_switch_wal()');
    for (let n = await backlog(); n > 0; n = await backlog()) await sleep(250);
  };
  await drain();
  const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(
    `cluster: pgbench scale ${scale}, ${seconds} s runs, -c 4 -j 2; ${(await run('nproc', [], { stdout: 'pipe' })).trim()} cores; load average ${loadavg()}`,
  );
  const cpDir = join(work, 'cp-archive');
  mkdirSync(cpDir);
  chownSync(cpDir, PG_UID, PG_GID);

  async function archiving(label, command) {
    await cluster.psql(`ALTER SYSTEM SET archive_command = '${command.replace(/'/g, "''")}'`);
    await cluster.psql('SELECT pg_reload_conf()');
    await drain();
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
    const left = await backlog();
    const d = Date.now();
    await drain();
    const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
    console.log(
      `${label}: ${tps.toFixed(0)} tps, WAL ${(generated / elapsed).toFixed(2)} seg/s generated, ${(archived / elapsed).toFixed(2)} archived; .ready every 5 s [${samples.join(', ')}], ${left} left at the end, drained in ${((Date.now() - d) / 1000).toFixed(1)} s (load ${loadavg()})`,
    );
    return tps;
  }

  const tps = { cp: [], ours: [] };
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? ['cp', 'ours'] : ['ours', 'cp'];
    for (const which of order) {
      if (which === 'cp') tps.cp.push(await archiving('archive_command = cp      ', `cp %p ${cpDir}/%f`));
      else tps.ours.push(await archiving('archive_command = wal-push', walPush));
    }
    rmSync(cpDir, { recursive: true, force: true });
    mkdirSync(cpDir);
    chownSync(cpDir, PG_UID, PG_GID);
    console.log(`round ${round}: wal-push / cp tps = ${(tps.ours[round] / tps.cp[round]).toFixed(2)} (goal >= 0.95)`);
  }
  const ratios = tps.ours.map((t, i) => t / tps.cp[i]).sort((a, b) => a - b);
  console.log(`tps: cp [${tps.cp.map((t) => t.toFixed(0)).join(', ')}], wal-push [${tps.ours.map((t) => t.toFixed(0)).join(', ')}]`);
  console.log(
    `per-round wal-push / cp: ${ratios.map((r) => r.toFixed(2)).join(', ')} (spread ${ratios[0].toFixed(2)}-${ratios.at(-1).toFixed(2)})`,
  );
} finally {
  // The background pusher leaves by itself once the server is gone (it watches postmaster.pid).
  await cluster.destroy();
  key.remove();
  rmSync(work, { recursive: true, force: true });
}
