#!/usr/bin/env node
// Benchmark (issue 15 item 5): drain the same backlog of >= 150 .ready WAL segments (as after an
// object-store outage) on one cluster in one run, with
//   1. archive_command = pms-backup wal-push %p (background pusher, zstd -1, OpenPGP, file repository),
//      plain and in the deployed shell-first form
//   2. pgBackRest 2.45 archive-push, archive-async=y, process-max=2 (zst, aes-256-cbc, posix repository)
// The backlog is made once (pgbench -i while archive_command fails) and replayed for every run:
// archive_command fails again, every .done of the backlog is renamed back to .ready, both
// repositories are emptied, then the tool under test is configured and timed from the reload
// until no .ready file is left. Rounds alternate which tool goes first; per-round ratios, their
// spread and the per-segment times are printed.
// Usage: node bench/wal-backlog.mjs [pgbench scale=200, ~155 segments] [rounds=2] [pgbackrest compress-level=1]
// BENCH_WAL_PUSH_ARGS (e.g. '--concurrency 4') is added to our archive_command, to compare pusher settings.
// Needs: npm run build, PostgreSQL 15, zstd, gpg, pgbackrest (apt-get install pgbackrest).
import { PG_GID, PG_UID } from './postgres-user.mjs';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { shellFirstArchiveCommand } from '../dist/commands/wal-push/archive-command.js';
import { startThrowawayCluster } from '../dist/postgres/throwaway-cluster.js';
import { generateGpgKeyPair, signingEnv } from '../dist/testing/gpg-keys.js';
import { binPath } from '../dist/testing/run-cli.js';
import { BENCH_NODE } from './bench-node.mjs';

const scale = Number(process.argv[2] ?? 200);
const rounds = Number(process.argv[3] ?? 2);
const brLevel = Number(process.argv[4] ?? 1);
const PG_BIN = '/usr/lib/postgresql/15/bin';

function run(cmd, args, { env, runAs, stdout = 'ignore' } = {}) {
  return new Promise((resolve, reject) => {
    const [file, argv] = runAs ? ['runuser', ['-u', runAs, '--', cmd, ...args]] : [cmd, args];
    const child = spawn(file, argv, { env: env ?? process.env, stdio: ['ignore', stdout, 'pipe'] });
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

/** Stops the background pusher this run's cluster started (found by its argv, killed by pid). */
function stopPusher(walDir) {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv.includes('wal-pusher') && argv.includes(walDir)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

const work = mkdtempSync(join(tmpdir(), 'pms-bench-backlog-'));
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
const walPushInvocation = `'${BENCH_NODE}' '${binPath('pms-backup')}' wal-push ${process.env.BENCH_WAL_PUSH_ARGS ?? ''}`;
// Plain: Node answers every call. Shell-first: the deployed form, the shell answers a file
// archived ahead (src/commands/wal-push/archive-command.ts).
const walPush = `${walPushInvocation} %p`;
const walPushShellFirst = shellFirstArchiveCommand(walPushInvocation);
const cluster = await startThrowawayCluster({
  durable: true,
  settings: {
    archive_mode: 'on',
    wal_level: 'replica',
    archive_command: 'false',
    max_wal_size: '16GB',
    checkpoint_timeout: '1h',
    fsync: true,
  },
  serverEnv: env,
});
const walDir = join(cluster.dataDir, 'pg_wal');
const statusDir = join(walDir, 'archive_status');
try {
  const libpq = cluster.libpqEnv;
  await run(`${PG_BIN}/pgbench`, ['-i', '-q', '-s', String(scale)], { env: libpq });
  await cluster.psql('SELECT pg_switch_wal()');
  await sleep(1000);
  const backlog = readdirSync(statusDir)
    .filter((n) => n.endsWith('.ready'))
    .map((n) => n.slice(0, -'.ready'.length));
  console.log(
    `cluster: pgbench -i scale ${scale}; backlog ${backlog.length} .ready segments (${((backlog.length * 16) / 1024).toFixed(2)} GiB); ${(await run('nproc', [], { stdout: 'pipe' })).trim()} cores; load average ${(await run('cat', ['/proc/loadavg'], { stdout: 'pipe' })).split(' ').slice(0, 3).join(' ')}`,
  );

  const br = join(work, 'pgbackrest');
  for (const d of ['repo', 'log', 'lock', 'spool']) mkdirSync(join(br, d), { recursive: true });
  const brConf = join(br, 'pgbackrest.conf');
  writeFileSync(
    brConf,
    [
      '[global]',
      `repo1-path=${join(br, 'repo')}`,
      'repo1-cipher-type=aes-256-cbc',
      'repo1-cipher-pass=bench-only-not-a-secret',
      'compress-type=zst',
      `compress-level=${brLevel}`,
      'process-max=2',
      'archive-async=y',
      `spool-path=${join(br, 'spool')}`,
      `log-path=${join(br, 'log')}`,
      `lock-path=${join(br, 'lock')}`,
      'log-level-file=off',
      '[bench]',
      `pg1-path=${cluster.dataDir}`,
      `pg1-port=${cluster.port}`,
      `pg1-socket-path=${cluster.socketDir}`,
      '',
    ].join('\n'),
  );
  const brArchive = `pgbackrest --config=${brConf} --stanza=bench archive-push %p`;

  const setCommand = async (command) => {
    await cluster.psql(`ALTER SYSTEM SET archive_command = '${command.replace(/'/g, "''")}'`);
    await cluster.psql('SELECT pg_reload_conf()');
  };
  const readyCount = () => readdirSync(statusDir).filter((n) => n.endsWith('.ready')).length;
  /** The same backlog again: archiving off, every .done of it back to .ready, repositories empty. */
  const reset = async () => {
    await setCommand('false');
    // Leftover pushers (ours leaves when idle) would archive the renamed files early.
    stopPusher(walDir);
    await sleep(1500);
    for (const name of backlog) {
      try {
        renameSync(join(statusDir, `${name}.done`), join(statusDir, `${name}.ready`));
      } catch (error) {
        if (error.code !== 'ENOENT') throw error;
      }
    }
    rmSync(join(walDir, 'pms_backup_status'), { recursive: true, force: true });
    rmSync(repo, { recursive: true, force: true });
    mkdirSync(repo, { mode: 0o700 });
    chownSync(repo, PG_UID, PG_GID);
    rmSync(join(br, 'repo'), { recursive: true, force: true });
    rmSync(join(br, 'spool'), { recursive: true, force: true });
    mkdirSync(join(br, 'repo'));
    mkdirSync(join(br, 'spool'));
    await run('chown', ['-R', 'postgres:postgres', br]);
    await run('pgbackrest', [`--config=${brConf}`, '--stanza=bench', 'stanza-create'], { runAs: 'postgres' });
    await run('sync', []);
    if (readyCount() < backlog.length) throw new Error(`only ${readyCount()} of ${backlog.length} segments are .ready again`);
  };
  const drain = async (label, command) => {
    await reset();
    const n = readyCount();
    const t = process.hrtime.bigint();
    await setCommand(command);
    while (readyCount() > 0) await sleep(100);
    const s = Number(process.hrtime.bigint() - t) / 1e9;
    const load = (await run('cat', ['/proc/loadavg'], { stdout: 'pipe' })).split(' ')[0];
    console.log(`${label.padEnd(44)} ${n} segments in ${s.toFixed(2)} s = ${((s / n) * 1000).toFixed(1)} ms/segment (load ${load})`);
    // For `perf record -k CLOCK_MONOTONIC -a`: `perf report --time <start>,<end>` gives this drain's samples alone.
    if (process.env.BENCH_WINDOWS === '1')
      console.log(`  window (CLOCK_MONOTONIC s): ${(Number(t) / 1e9).toFixed(6)},${(Number(t) / 1e9 + s).toFixed(6)}`);
    return s / n;
  };
  const times = { shell: [], ours: [], pgbr: [] };
  const labels = {
    shell: 'wal-push, shell-first archive_command',
    ours: 'wal-push, plain archive_command',
    pgbr: `pgBackRest archive-async (process-max 2, zst ${brLevel})`,
  };
  const commands = { shell: walPushShellFirst, ours: walPush, pgbr: brArchive };
  const kinds = ['shell', 'ours', 'pgbr'];
  for (let round = 0; round < rounds; round++) {
    // A different tool first in each round: the machine's noise is spread, not given to one.
    const order = kinds.map((_, i) => kinds[(i + round) % kinds.length]);
    for (const which of order) times[which].push(await drain(labels[which], commands[which]));
    console.log(
      `round ${round}: per segment, shell-first / pgBackRest = ${(times.shell[round] / times.pgbr[round]).toFixed(2)} (goal <= 1.0), plain / pgBackRest = ${(times.ours[round] / times.pgbr[round]).toFixed(2)}`,
    );
  }
  const ms = (k) => times[k].map((v) => (v * 1000).toFixed(1)).join(', ');
  console.log(`ms/segment: shell-first [${ms('shell')}], plain [${ms('ours')}], pgBackRest [${ms('pgbr')}]`);
  for (const k of ['shell', 'ours']) {
    const ratios = times[k].map((t, i) => t / times.pgbr[i]).sort((a, b) => a - b);
    console.log(
      `per-round ${labels[k]} / pgBackRest: ${ratios.map((r) => r.toFixed(2)).join(', ')} (spread ${ratios[0].toFixed(2)}-${ratios.at(-1).toFixed(2)})`,
    );
  }
  await setCommand('false');
} finally {
  stopPusher(walDir);
  await cluster.destroy();
  key.remove();
  rmSync(work, { recursive: true, force: true });
}
