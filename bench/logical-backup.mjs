#!/usr/bin/env node
// Benchmark: pms-backup create vs the seed pipeline (pg_dump -Fc | gpg -e) vs the floor
// (pg_dump -Fc -Z0 > /dev/null), on a generated telemetry table, all in the same run on the same
// cluster. Prints ratios against those baselines (machines are noisy; ratios travel better).
// Usage: npm run build && node bench/logical-backup.mjs [rows=3000000] [rounds=3]
// Each round runs floor, seed and ours back to back; the report gives the best time of each,
// the spread over rounds, and the ratios within each round (the fairest comparison on a shared,
// noisy machine).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startThrowawayCluster } from '../dist/postgres/throwaway-cluster.js';
import { generateGpgKeyPair, signingEnv } from '../dist/testing/gpg-keys.js';

const rows = Number(process.argv[2] ?? 3_000_000);
const rounds = Number(process.argv[3] ?? 3);
const work = mkdtempSync(join(tmpdir(), 'pms-bench-'));
const log = (...a) => console.error('[bench]', ...a);

function timed(label, command, args, env) {
  const start = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', command, ...args], { env, encoding: 'utf8', maxBuffer: 1 << 26 });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0) throw new Error(`${label} failed: ${r.stderr}`);
  const rssKb = Number(r.stderr.trim().split('\n').pop());
  return { seconds, rssMb: rssKb / 1024, stdout: r.stdout };
}

const cluster = await startThrowawayCluster({ settings: { shared_buffers: '512MB', max_wal_size: '4GB' } });
const key = await generateGpgKeyPair({ name: 'PMS Bench' });
try {
  log(`generating ${rows} telemetry rows…`);
  await cluster.psql('CREATE DATABASE patient_telemetry');
  await cluster.psql(
    `
    CREATE TABLE reading (
      nhs_number char(10) NOT NULL, device_id text NOT NULL, code text NOT NULL, value double precision NOT NULL,
      unit text NOT NULL, measured_at timestamptz NOT NULL, received_at timestamptz NOT NULL, reading_id uuid NOT NULL,
      PRIMARY KEY (device_id, reading_id));
    INSERT INTO reading
    SELECT lpad(((g % 5000) * 11 + 4000000000)::text, 10, '0'), 'dev-' || (g % 5000),
           (ARRAY['8867-4','2708-6','9279-1','8310-5','29463-7'])[1 + g % 5],
           60 + (g % 400) / 10.0 + random(), (ARRAY['/min','%','/min','Cel','kg'])[1 + g % 5],
           timestamptz '2026-11-01' + g * interval '1 second', timestamptz '2026-11-01' + g * interval '1 second' + interval '2 s',
           md5(g::text)::uuid
    FROM generate_series(1, ${rows}) g;
    VACUUM ANALYZE reading;`,
    'patient_telemetry',
  );
  const tableBytes = Number(await cluster.psql("SELECT pg_total_relation_size('reading')", 'patient_telemetry'));
  log(`table ${(tableBytes / 1e6).toFixed(0)} MB`);
  const pgDump = join(cluster.binDir, 'pg_dump');
  const env = { ...cluster.libpqEnv, PGDATABASE: 'patient_telemetry', GNUPGHOME: key.gnupgHome };

  const results = [];
  for (let round = 0; round < rounds; round++) {
    const floor = timed('floor', 'bash', ['-c', `"${pgDump}" -Fc -Z0 > /dev/null`], env);
    const seedOut = join(work, 'seed.dump.gpg');
    const seed = timed(
      'seed',
      'bash',
      ['-c', `set -o pipefail; "${pgDump}" -Fc | gpg --batch --yes --trust-model always -e -r ${key.fingerprint} -o "${seedOut}"`],
      env,
    );
    const seedBytes = statSync(seedOut).size;
    rmSync(seedOut);
    const repo = join(work, `repo-${round}`);
    mkdirSync(repo);
    const ours = timed('ours', process.execPath, [join(import.meta.dirname, '..', 'bin', 'pms-backup.js'), 'create', '--json'], {
      ...process.env,
      ...cluster.postgresEnv,
      POSTGRES_DB: 'patient_telemetry',
      BACKUP_REPOSITORY: `file://${repo}`,
      ...signingEnv(key),
      BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
      BACKUP_GPG_KEY_ID: key.fingerprint,
    });
    const manifest = JSON.parse(ours.stdout);
    results[round] = { floor, seed, seedBytes, ours, oursBytes: manifest.bytes.stored, plainBytes: manifest.bytes.plain };
    rmSync(repo, { recursive: true, force: true });
    log(`round ${round}: floor ${floor.seconds.toFixed(2)} s, seed ${seed.seconds.toFixed(2)} s, ours ${ours.seconds.toFixed(2)} s`);
  }
  // Report the fastest round of each (least disturbed by other load), the spread, and the
  // ratios within each round.
  const times = (f) => results.map((r) => r[f].seconds);
  const best = (f) => Math.min(...times(f));
  const spread = (f) => `${Math.min(...times(f)).toFixed(2)}–${Math.max(...times(f)).toFixed(2)}`;
  const r = results.at(-1);
  const floorS = best('floor'),
    seedS = best('seed'),
    oursS = best('ours');
  const report = {
    rows,
    rounds,
    tableMB: +(tableBytes / 1e6).toFixed(0),
    dumpMB: +(r.plainBytes / 1e6).toFixed(0),
    seconds: { floor: +floorS.toFixed(2), seedPipeline: +seedS.toFixed(2), ours: +oursS.toFixed(2) },
    spread: { floor: spread('floor'), seedPipeline: spread('seed'), ours: spread('ours') },
    storedMB: { seedPipeline: +(r.seedBytes / 1e6).toFixed(1), ours: +(r.oursBytes / 1e6).toFixed(1) },
    ratios: {
      oursVsSeed: +(oursS / seedS).toFixed(2),
      oursVsFloor: +(oursS / floorS).toFixed(2),
      sizeOursVsSeed: +(r.oursBytes / r.seedBytes).toFixed(2),
    },
    ratiosPerRound: results.map((x) => ({
      oursVsSeed: +(x.ours.seconds / x.seed.seconds).toFixed(2),
      oursVsFloor: +(x.ours.seconds / x.floor.seconds).toFixed(2),
    })),
    peakRssMB: { oursNodeAndChildren: +Math.max(...results.map((x) => x.ours.rssMb)).toFixed(0) },
    goals: {
      'ours <= 0.5x seed': oursS / seedS <= 0.5,
      'ours <= 1.5x floor': oursS / floorS <= 1.5,
      'size <= seed': r.oursBytes <= r.seedBytes,
    },
  };
  console.log(JSON.stringify(report, null, 2));
} finally {
  await cluster.destroy();
  key.remove();
  rmSync(work, { recursive: true, force: true });
}
