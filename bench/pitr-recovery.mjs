#!/usr/bin/env node
// Benchmark (issue 15): on one cluster in one run, with the same base backup contents and the same
// archived WAL (>= 150 16 MiB segments after the base backups), compare
//   a. pms-backup restore --pitr --target-time latest, then PostgreSQL replaying through
//      restore_command (wal-fetch with the prefetch spool) to the end of the archive;
//   b. pgBackRest 2.45 restore, then replay through archive-get with archive-async
//      (archive-get-queue-max 1 GiB, process-max 2);
//   c. the floor: our base backup unpacked with every segment already in pg_wal, no
//      restore_command (PostgreSQL replaying alone).
// Each run is timed as restore (unpacking the base backup) + replay (pg_ctl start -w with
// hot_standby off, which returns once recovery ended and the server accepts connections).
// Rounds alternate whether a or b goes first. Every archive_command pushes each segment to both
// archives and a plain copy, so all three replay the very same WAL. Restored servers run with
// archive_mode off (nothing flows back).
// Usage: node bench/pitr-recovery.mjs [segments=150] [rounds=2]
// Needs: npm run build, PostgreSQL 15, zstd, gpg, pgbackrest (apt-get install pgbackrest).
import { cleanUpOnInterrupt } from './interrupt-cleanup.mjs';
import { PG_GID, PG_UID } from './postgres-user.mjs';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../dist/postgres/free-port.js';
import { startThrowawayCluster } from '../dist/postgres/throwaway-cluster.js';
import { generateGpgKeyPair, signingEnv } from '../dist/testing/gpg-keys.js';
import { binPath } from '../dist/testing/run-cli.js';
import { BENCH_NODE } from './bench-node.mjs';

const wantSegments = Number(process.argv[2] ?? 150);
const rounds = Number(process.argv[3] ?? 2);
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
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.slice(-1500)}`)),
    );
  });
}

async function timed(fn) {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

const work = mkdtempSync(join(tmpdir(), 'pms-bench-pitr-'));
chmodSync(work, 0o755);
const key = await generateGpgKeyPair({ name: 'PMS Bench' });
chownSync(key.privateKeyFile, PG_UID, PG_GID);
const repo = join(work, 'repo');
mkdirSync(repo, { mode: 0o700 });
chownSync(repo, PG_UID, PG_GID);
const copies = join(work, 'wal-copies');
mkdirSync(copies);
chownSync(copies, PG_UID, PG_GID);
const env = {
  BACKUP_REPOSITORY: `file://${repo}`,
  ...signingEnv(key),
  BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
  BACKUP_GPG_KEY_ID: key.fingerprint,
  BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile,
  BACKUP_LOG_DIR: join(work, 'logs'),
};
const br = join(work, 'pgbackrest');
for (const dir of ['repo', 'log', 'lock', 'spool']) mkdirSync(join(br, dir), { recursive: true });
const brConf = join(br, 'pgbackrest.conf');
const conf = [`--config=${brConf}`, '--stanza=bench'];
const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;
const archiveCommand = [
  `${q(BENCH_NODE)} ${q(binPath('pms-backup'))} wal-push %p`,
  `pgbackrest ${conf.join(' ')} archive-push %p`,
  `cp %p ${copies}/%f`,
].join(' && ');
const cluster = await startThrowawayCluster({
  durable: true,
  // autovacuum off: its visits to the table after the load (hint bits, freezing, full-page images)
  // kept adding tens of segments to the archive between runs, so a later run replayed more WAL.
  settings: {
    archive_mode: 'on',
    wal_level: 'replica',
    archive_command: archiveCommand,
    max_wal_size: '4GB',
    fsync: true,
    autovacuum: 'off',
  },
  serverEnv: env,
});
cleanUpOnInterrupt(work, async () => {
  // The bench's finally may be destroying the cluster at the same time: either one's stop will do.
  await cluster.destroy().catch(() => undefined);
  key.remove();
  if (!process.env.PMS_BENCH_KEEP) rmSync(work, { recursive: true, force: true });
});
const results = { ours: [], pgbr: [], floor: [] };
try {
  writeFileSync(
    brConf,
    [
      '[global]',
      `repo1-path=${join(br, 'repo')}`,
      'repo1-cipher-type=aes-256-cbc',
      'repo1-cipher-pass=bench-only-not-a-secret',
      'repo1-retention-full=9',
      'compress-type=zst',
      'compress-level=3',
      'process-max=2',
      'archive-async=y',
      'archive-get-queue-max=1GiB',
      `spool-path=${join(br, 'spool')}`,
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
  await run('pgbackrest', [...conf, 'stanza-create'], { runAs: 'postgres' });
  await cluster.psql('CREATE TABLE reading (id bigserial PRIMARY KEY, device int, value double precision, note text)');
  await cluster.psql('INSERT INTO reading (device, value, note) SELECT g % 500, random(), md5(g::text) FROM generate_series(1, 200000) g');
  const backlog = async () => Number(await cluster.psql("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"));
  const drain = async () => {
    await cluster.psql('SELECT pg_switch_wal()');
    for (let n = await backlog(); n > 0; n = await backlog()) await sleep(500);
  };
  await drain();

  // Both base backups, back to back, so the WAL after them is the same.
  await run(BENCH_NODE, [binPath('pms-backup'), 'base-backup'], {
    env: { ...process.env, ...cluster.postgresEnv, POSTGRES_DB: 'postgres', ...env },
  });
  await run('pgbackrest', [...conf, '--type=full', 'backup'], { runAs: 'postgres' });
  const startLsn = await cluster.psql('SELECT pg_current_wal_lsn()');
  // Telemetry-like WAL: inserts of new readings and updates of recent ones, until enough segments.
  const generated = async () => Number(await cluster.psql(`SELECT (pg_current_wal_lsn() - '${startLsn}'::pg_lsn) / (16*1024*1024)`));
  while ((await generated()) < wantSegments) {
    await cluster.psql(
      'INSERT INTO reading (device, value, note) SELECT g % 500, random(), md5(g::text) FROM generate_series(1, 400000) g; UPDATE reading SET value = value + 1 WHERE id % 7 = 0 AND id > (SELECT max(id) - 300000 FROM reading)',
    );
  }
  const drainStart = Date.now();
  await drain();
  const expected = await cluster.psql('SELECT count(*), sum(value)::numeric(20,3) FROM reading');
  const segments = readdirSync(copies).filter((f) => /^[0-9A-F]{24}$/.test(f)).length;
  const load = (await run('cat', ['/proc/loadavg'], { stdout: 'pipe' })).trim();
  console.log(
    `cluster: ${await generated()} segments of WAL after the base backups (${segments} archived in all); archive drained in ${((Date.now() - drainStart) / 1000).toFixed(1)} s; load average ${load}`,
  );

  const parent = join(work, 'restores');
  mkdirSync(parent);
  chownSync(parent, PG_UID, PG_GID);
  const socket = join(work, 'sock');
  mkdirSync(socket);
  chownSync(socket, PG_UID, PG_GID);

  /** pg_ctl start -w on a restored directory: returns when recovery ended and the server is up. */
  async function replay(dataDir, serverEnv) {
    const port = await freePort();
    // BENCH_PG_OPTIONS: extra server options for a diagnosis (e.g. -c log_min_messages=debug3, which logs each restore_command).
    const options =
      `-p ${port} -k ${socket} -c listen_addresses= -c archive_mode=off -c hot_standby=off ${process.env.BENCH_PG_OPTIONS ?? ''}`.trim();
    const log = `${dataDir}.log`;
    // pg_ctl -w returns while recovery still runs (hot_standby off or not): the end is the
    // server's own "ready to accept connections" line, polled in its log.
    const seconds = await timed(async () => {
      await run(`${PG_BIN}/pg_ctl`, ['-D', dataDir, '-l', log, '-W', '-o', options, 'start'], {
        runAs: 'postgres',
        env: { PATH: process.env.PATH, ...serverEnv },
      });
      for (;;) {
        const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
        if (/database system is ready to accept connections/.test(text)) return;
        if (/FATAL|PANIC/.test(text) && !/the database system is starting up/.test(text))
          throw new Error(`${dataDir}: ${text.slice(-1500)}`);
        await sleep(100);
      }
    });
    const rows = await run(
      `${PG_BIN}/psql`,
      [
        '-X',
        '-qAt',
        '-h',
        socket,
        '-p',
        String(port),
        '-U',
        'postgres',
        '-d',
        'postgres',
        '-c',
        'SELECT count(*), sum(value)::numeric(20,3) FROM reading',
      ],
      {
        stdout: 'pipe',
      },
    );
    await run(`${PG_BIN}/pg_ctl`, ['-D', dataDir, '-w', '-m', 'immediate', 'stop'], { runAs: 'postgres' });
    if (rows.trim() !== expected) throw new Error(`${dataDir}: recovered ${rows.trim()}, expected ${expected}`);
    console.log(`  ${dataDir.split('/').pop()}: ${replayDiagnostics(readFileSync(log, 'utf8'))}`);
    return seconds;
  }

  /**
   * Where a replay's time went, from the server's log (log_line_prefix '%m' stamps every line):
   * when the first segment arrived, and the waits between segments (a wait well above the
   * replay of one segment is PostgreSQL waiting for restore_command).
   */
  function replayDiagnostics(text) {
    const stamp = (line) => Date.parse(`${line.slice(0, 23).replace(' ', 'T')}Z`);
    const lines = text.split('\n');
    const start = lines.find((l) => /starting PostgreSQL/.test(l));
    const restored = lines.filter((l) => /restored log file "[0-9A-F]{24}"/.test(l)).map(stamp);
    const ready = lines.find((l) => /ready to accept connections/.test(l));
    if (!start) return 'no start line in the log';
    // The phases, from the server's start: the first calls until redo starts (both sides' start-up),
    // redo, and redo's end until connections (the probes past the end, promotion or the
    // end-of-recovery checkpoint). Read in place, ours' first segment is no "restored log file".
    const since = (re) => {
      const line = lines.find((l) => re.test(l));
      return line ? `+${((stamp(line) - stamp(start)) / 1000).toFixed(2)}` : '-';
    };
    const phases = `redo starts ${since(/redo starts at/)}, redo done ${since(/redo done at/)}, ready ${since(/ready to accept connections/)} s after the start`;
    if (restored.length === 0) return `${phases}; no segment delivered through %p`;
    const gaps = restored
      .slice(1)
      .map((t, i) => t - restored[i])
      .sort((a, b) => a - b);
    const pct = (q) => gaps[Math.min(gaps.length - 1, Math.floor(q * gaps.length))] ?? 0;
    const slow = gaps.filter((g) => g > 250);
    const prefetcher =
      lines.find((l) => /prefetcher exits|prefetcher stopped/.test(l))?.replace(/^.*pms-backup wal-prefetch: /, '') ?? 'no prefetcher line';
    // The end, after the last segment: the probes that find nothing more (the next segment, the
    // next timeline's history), recovery_end_command, the end-of-recovery checkpoint.
    const last = restored.at(-1);
    const after = (re) => {
      const line = lines.find((l) => re.test(l) && stamp(l) >= last);
      return line ? `+${((stamp(line) - last) / 1000).toFixed(2)}` : '-';
    };
    const end = `end after the last segment: redo done ${after(/redo done at/)}, new timeline ${after(/selected new timeline ID/)}, archive recovery complete ${after(/archive recovery complete/)}, ready ${after(/ready to accept connections/)} s`;
    return `${phases}; ${end}; ${restored.length} segments delivered through %p (any others were read in place from pg_wal, where the gaps below then include them); first at +${((restored[0] - stamp(start)) / 1000).toFixed(1)} s, last at +${((restored.at(-1) - stamp(start)) / 1000).toFixed(1)} s, ready at +${((stamp(ready ?? start) - stamp(start)) / 1000).toFixed(1)} s; gap between segments median ${pct(0.5)} ms, p90 ${pct(0.9)} ms, max ${gaps.at(-1) ?? 0} ms, ${slow.length} gaps > 250 ms totalling ${(slow.reduce((a, b) => a + b, 0) / 1000).toFixed(1)} s; ${prefetcher}`;
  }

  const ourRestore = (dataDir) =>
    run(BENCH_NODE, [binPath('pms-backup'), 'restore', '--pitr', '--target-time', 'latest', '--pgdata', dataDir], {
      env: { ...process.env, ...env },
    });

  async function runOurs(round) {
    const ours = join(parent, `ours-${round}`);
    const restoreOurs = await timed(() => ourRestore(ours));
    const replayOurs = await replay(ours, env);
    results.ours.push({ restore: restoreOurs, replay: replayOurs });
    rmSync(ours, { recursive: true, force: true });
  }

  async function runPgbr(round) {
    const pgbr = join(parent, `pgbr-${round}`);
    mkdirSync(pgbr, { mode: 0o700 });
    chownSync(pgbr, PG_UID, PG_GID);
    rmSync(join(br, 'spool'), { recursive: true, force: true });
    mkdirSync(join(br, 'spool'));
    chownSync(join(br, 'spool'), PG_UID, PG_GID);
    const restorePgbr = await timed(() => run('pgbackrest', [...conf, `--pg1-path=${pgbr}`, 'restore'], { runAs: 'postgres' }));
    const replayPgbr = await replay(pgbr, {});
    results.pgbr.push({ restore: restorePgbr, replay: replayPgbr });
    rmSync(pgbr, { recursive: true, force: true });
  }

  for (let round = 0; round < rounds; round++) {
    // Which tool goes first alternates by round: on this machine memory freed more than a few
    // seconds ago goes back to the host (virtio-balloon free page reporting), and the next
    // writes into it cost ~5x the kernel time (2.4 GB: 1.6-1.7 s against 0.3 s), so a fixed
    // order favours whichever runs right after the previous phase freed its directory.
    if (round % 2 === 0) {
      await runOurs(round);
      await runPgbr(round);
    } else {
      await runPgbr(round);
      await runOurs(round);
    }

    // The floor: the same base backup, every archived segment already in pg_wal, no
    // restore_command and no signal file: PostgreSQL replays from backup_label to the end of pg_wal.
    // (restore --pitr --target-time latest writes standby.signal: docs/pitr.md, "Promotion at the
    // end of the archive".)
    const floor = join(parent, `floor-${round}`);
    await ourRestore(floor);
    for (const signal of ['recovery.signal', 'standby.signal']) rmSync(join(floor, signal), { force: true });
    for (const f of readdirSync(copies)) if (/^[0-9A-F]{24}$/.test(f)) cpSync(join(copies, f), join(floor, 'pg_wal', f));
    await run('chown', ['-R', 'postgres:postgres', join(floor, 'pg_wal')]);
    await run('sync', []);
    const replayFloor = await replay(floor, {});
    results.floor.push({ restore: 0, replay: replayFloor });
    rmSync(floor, { recursive: true, force: true });

    // Diagnostic floors (BENCH_PITR_FLOORS=1): what archive recovery itself costs PostgreSQL per
    // segment, without any fetching. (d) every segment already in pg_wal and a restore_command
    // that answers "not archived" at once, so PostgreSQL reads pg_wal; (e) every segment in a
    // plain local directory and restore_command = mv, so PostgreSQL handles each as restored from
    // the archive (rename into pg_wal, fsyncs, .done) after one mv per call.
    if (process.env.BENCH_PITR_FLOORS === '1') {
      const variants = [
        ['archive recovery, segments in pg_wal, restore_command false', 'false', 'pg_wal'],
        ['archive recovery, restore_command mv from a local directory', null, 'local'],
      ];
      for (const [index, [label, command, where]] of variants.entries()) {
        const dir = join(parent, `diag-${round}-${index}`);
        await ourRestore(dir);
        const local = join(parent, `diag-${round}-${index}-wal`);
        const target = where === 'pg_wal' ? join(dir, 'pg_wal') : local;
        mkdirSync(target, { recursive: true });
        for (const f of readdirSync(copies)) if (/^[0-9A-F]{24}$/.test(f)) cpSync(join(copies, f), join(target, f));
        await run('chown', ['-R', 'postgres:postgres', target]);
        await run('sync', []);
        const restore = command ?? `mv -f ${local}/%f %p`;
        // Archive recovery, which ends by itself: neither command promotes a standby.
        rmSync(join(dir, 'standby.signal'), { force: true });
        writeFileSync(join(dir, 'recovery.signal'), '');
        chownSync(join(dir, 'recovery.signal'), PG_UID, PG_GID);
        writeFileSync(
          join(dir, 'postgresql.auto.conf'),
          `${readFileSync(join(dir, 'postgresql.auto.conf'), 'utf8')}\nrestore_command = '${restore}'\nrecovery_end_command = ''\n`,
        );
        const seconds = await replay(dir, {});
        console.log(`round ${round}: ${label}: replay ${seconds.toFixed(1)} s = ${(seconds / replayFloor).toFixed(2)}x the floor`);
        // rm(1): Node's rmSync met ENOTEMPTY here, a file appearing in pg_wal after the stop.
        await run('rm', ['-rf', dir, local]);
      }
    }

    const total = (r) => r.restore + r.replay;
    const o = results.ours[round];
    const p = results.pgbr[round];
    console.log(
      `round ${round}: ours restore ${o.restore.toFixed(1)} s + replay ${o.replay.toFixed(1)} s = ${total(o).toFixed(1)} s; pgBackRest async ${p.restore.toFixed(1)} + ${p.replay.toFixed(1)} = ${total(p).toFixed(1)} s; floor replay ${replayFloor.toFixed(1)} s`,
    );
    console.log(
      `round ${round}: ours / pgBackRest async = ${(total(o) / total(p)).toFixed(2)} (goal <= 0.8); our replay / floor = ${(o.replay / replayFloor).toFixed(2)} (goal <= 1.5); pgBackRest replay / floor = ${(p.replay / replayFloor).toFixed(2)}; restore ours / pgBackRest = ${(o.restore / p.restore).toFixed(2)}`,
    );
  }
  const spread = (values) => `${Math.min(...values).toFixed(2)}-${Math.max(...values).toFixed(2)}`;
  const total = (r) => r.restore + r.replay;
  console.log(
    `spread over ${rounds} rounds: ours / pgBackRest async ${spread(results.ours.map((o, i) => total(o) / total(results.pgbr[i])))}; our replay / floor ${spread(results.ours.map((o, i) => o.replay / results.floor[i].replay))}; restore ours / pgBackRest ${spread(results.ours.map((o, i) => o.restore / results.pgbr[i].restore))}; load average now ${(await run('cat', ['/proc/loadavg'], { stdout: 'pipe' })).trim()}`,
  );
} finally {
  await cluster.destroy();
  key.remove();
  if (!process.env.PMS_BENCH_KEEP) rmSync(work, { recursive: true, force: true });
}
