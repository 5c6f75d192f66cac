import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, watch, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { type DecryptionKeys, loadDecryptionKeys } from '../../../crypto/keys.js';
import { type TrustPolicy, loadTrustedSigners } from '../../../crypto/signing.js';
import { startThrowawayCluster, type ThrowawayCluster } from '../../../postgres/throwaway-cluster.js';
import { FsStorage } from '../../../storage/fs/fs-storage.js';
import { type ArchiveFixture, createArchiveFixture } from '../../../testing/archive-fixture.js';
import { runCli } from '../../../testing/run-cli.js';
import { parseWalFileName } from '../../../wal/wal-file-name.js';
import { archiveCommand } from '../../restore/pitr/recovery-settings.js';
import { restorePitr } from '../../restore/pitr/restore-pitr.js';
import { serveFromSpool } from './fast-path.js';
import { type PrefetcherOptions, runPrefetcher } from './prefetcher.js';
import { SPOOL_ROOT, USED_NOTE, claimFetch, markWanted, parseNoteName, readWanted, spoolDirectory } from './spool.js';
import { backupStartSegment, wantedBefore } from './backup-start.js';
import { SEGMENT_WORKER_ENV, SEGMENT_WORKER_NODE_FLAGS } from '../../../process/segment-worker-flags.js';
import { procEnviron } from '../../../testing/proc-environ.js';
import { BACKGROUND_NICE } from '../../../process/background-priority.js';

let fixture: ArchiveFixture;
let source: ThrowawayCluster;
const restored: ThrowawayCluster[] = [];
let keys: DecryptionKeys;
let trust: TrustPolicy;
let env: Record<string, string>;
let systemIdentifier: string;
let expectedRows: string;
/** Segments archived after the base backup, oldest first. */
let archived: string[];

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, seconds = 120): Promise<T> {
  for (let i = 0; i < seconds * 20; i += 1) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const serverLog = (cluster: ThrowawayCluster) => readFileSync(join(dirname(cluster.dataDir), 'server.log'), 'utf8');
const rows = (cluster: ThrowawayCluster) => cluster.psql('SELECT count(*), sum(value) FROM reading', 'patient_telemetry');

/**
 * A data directory of this system with no server, for the prefetcher run in-process: its
 * pg_control is all wal-fetch and the prefetcher read of it, set as a server in archive recovery
 * has it (DBState 5 at offset 16; the source's says in production).
 */
function recoveringDataDir(name: string): string {
  const dataDir = join(fixture.work, name);
  mkdirSync(join(dataDir, 'global'), { recursive: true });
  mkdirSync(join(dataDir, 'pg_wal'));
  const control = readFileSync(join(source.dataDir, 'global', 'pg_control'));
  control.writeUInt32LE(5, 16);
  writeFileSync(join(dataDir, 'global', 'pg_control'), control);
  return dataDir;
}

/**
 * recoveringDataDir with a server run to bind notes to (postmaster.pid naming `pid`; only its pid
 * and start time are read) and a spool whose `wanted` mark is the first archived segment.
 */
function serverRunDataDir(name: string, pid: number): { dataDir: string; directory: string } {
  const dataDir = recoveringDataDir(name);
  mkdirSync(join(dataDir, 'pg_wal', 'archive_status'));
  writeFileSync(join(dataDir, 'postmaster.pid'), `${pid}\n${dataDir}\n1764700000\n5432\n`);
  const directory = spoolDirectory(dataDir, systemIdentifier, false);
  mkdirSync(directory, { recursive: true });
  markWanted(directory, archived[0]!);
  return { dataDir, directory };
}

/** The prefetcher in-process on the fixture's repository (two segments ahead unless told). */
function prefetchFor(
  dataDir: string,
  directory: string,
  options: Partial<Pick<PrefetcherOptions, 'signal' | 'log' | 'depth' | 'idleMs' | 'headClaim'>>,
) {
  return runPrefetcher({
    storage: new FsStorage(fixture.repoRoot),
    keys,
    trust,
    dataDir,
    directory,
    systemIdentifier,
    depth: 2,
    maxBytes: 1 << 30,
    ...options,
  });
}

/** restore --pitr (as the command does it) into a fresh directory and start PostgreSQL on it. */
async function restoreAndStart(
  serverEnv: Record<string, string>,
  options: { prefetch?: boolean; beforeStart?: (dataDir: string) => void; waitForPromotion?: boolean } = {},
): Promise<ThrowawayCluster> {
  const cluster = await startThrowawayCluster({
    settings: {},
    serverEnv,
    populate: async (dataDir) => {
      await restorePitr({
        storage: new FsStorage(fixture.repoRoot),
        keys,
        trust,
        target: 'latest',
        dataDir,
        prefetch: options.prefetch ?? true,
      });
      options.beforeStart?.(dataDir);
    },
  });
  restored.push(cluster);
  if (options.waitForPromotion !== false) {
    await waitFor('recovery to finish and promote', async () =>
      (await cluster.psql('SELECT pg_is_in_recovery()')) === 'f' ? true : undefined,
    );
  }
  return cluster;
}

before(async () => {
  fixture = await createArchiveFixture('prefetch-test');
  env = { ...fixture.env };
  keys = await loadDecryptionKeys(fixture.key.privateKeyFile, fixture.key.passphraseFile);
  trust = { trusted: await loadTrustedSigners(fixture.key.publicKeyFile) };
  source = await startThrowawayCluster({
    settings: { archive_mode: 'on', wal_level: 'replica', archive_command: archiveCommand() },
    serverEnv: env,
  });
  systemIdentifier = await source.psql('SELECT system_identifier FROM pg_control_system()');
  await source.psql('CREATE DATABASE patient_telemetry');
  await source.psql('CREATE TABLE reading (id bigserial PRIMARY KEY, value int)', 'patient_telemetry');
  const backup = await runCli('pms-backup', ['base-backup', '--json'], { ...source.postgresEnv, ...env });
  assert.equal(backup.code, 0, backup.stderr);
  // Six segments after the base backup, each holding rows: enough for the prefetcher to run
  // ahead of recovery, few enough to keep the file quick.
  for (let i = 1; i <= 6; i += 1) {
    await source.psql(`INSERT INTO reading (value) SELECT g * ${i} FROM generate_series(1, 2000) g`, 'patient_telemetry');
    await source.psql('SELECT pg_switch_wal()');
  }
  const last = await source.psql('SELECT pg_walfile_name(pg_current_wal_lsn() - 1)');
  await waitFor(`${last} archived`, async () =>
    (await source.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")) >= last ? true : undefined,
  );
  expectedRows = await rows(source);
  archived = readdirSync(join(fixture.repoRoot, 'wal', '00000001'))
    .map((key) => key.replace(/\.zst\.gpg$/, ''))
    .filter((name) => parseWalFileName(name)?.kind === 'segment')
    .sort();
});

after(async () => {
  for (const cluster of restored) await cluster.destroy().catch(() => undefined);
  await source?.destroy();
  fixture?.remove();
});

describe('wal-fetch prefetch during recovery (real PostgreSQL, real repository)', () => {
  test('recovery through restore --pitr with prefetch reaches the same rows, served from the spool, and the spool is gone afterwards', async () => {
    const cluster = await restoreAndStart(env);
    assert.equal(await rows(cluster), expectedRows);
    const auto = readFileSync(join(cluster.dataDir, 'postgresql.auto.conf'), 'utf8');
    assert.match(
      auto,
      new RegExp(
        `restore_command = '\\[ %f != 00000001\\.history \\] \\|\\| exit 1; p\\(\\) \\{ \\{ read -r pm_pid; .* m="pg_wal/\\.pms-prefetch/${systemIdentifier}/%f@\\$pm_pid-\\$pm_start-\\$\\(stat .* exit 1; \\}; p; find pg_wal/\\.pms-prefetch/${systemIdentifier} -maxdepth 1 -name %f -type f -mmin -60 -exec mv -f \\{\\} %p .*; test -f %p \\|\\| exec `,
      ),
    );
    assert.match(auto, /recovery_end_command = .* wal-prefetch clean'/);
    assert.match(auto, /exec ''[^']+'' ''[^']+'' wal-fetch --promote-at-end %f %p'/);
    // A standby promoted at the end of the archive: it opened without waiting for the
    // end-of-recovery checkpoint, which runs in the background instead.
    const promoted = serverLog(cluster);
    assert.match(promoted, /wal-fetch [0-9A-F]{24}: not archived, the end of the archive: asked the server \(pid \d+\) to promote/);
    assert.match(promoted, /received promote request/);
    assert.match(promoted, /selected new timeline ID: 2/);
    assert.doesNotMatch(promoted, /checkpoint starting: end-of-recovery/);
    for (const name of ['standby.signal', 'recovery.signal', 'promote']) {
      assert.ok(!existsSync(join(cluster.dataDir, name)), `${name} is gone`);
    }
    await waitFor('the spool removed by recovery_end_command', async () =>
      existsSync(join(cluster.dataDir, SPOOL_ROOT)) ? undefined : true,
    );
    const log = serverLog(cluster);
    const exit = /prefetcher exits \([a-z-]+\): (\d+) fetched, (\d+) failed, (\d+) published in pg_wal/.exec(log);
    assert.ok(exit, log);
    assert.ok(Number(exit[1]) >= 3, `the prefetcher fetched ahead of recovery: ${exit[0]}`);
    assert.equal(exit[2], '0');
    assert.ok(Number(exit[3]) >= 3, `segments were published in place: ${exit[0]}`);
    // PostgreSQL logs "restored log file" only for a file restore_command delivered to %p; the
    // segments the shell answered in place it read from pg_wal itself, and still reached the rows.
    const restoredThroughP = (log.match(/restored log file "[0-9A-F]{24}"/g) ?? []).length;
    assert.ok(
      restoredThroughP < archived.length - 2,
      `${restoredThroughP} of ${archived.length} segments went through %p: none was read in place`,
    );
  });

  test('a restart of recovery mid-way (a new server run, whose shell no longer believes the notes of the last) reaches the same rows', async () => {
    // Recovery pauses at a target inside the archive (deterministically mid-way), with segments
    // beyond it already spooled; the server is then killed and restarted without the target.
    const middle = archived[Math.floor(archived.length / 2)]!;
    const lsn = `${Number.parseInt(middle.slice(8, 16), 16).toString(16)}/${(Number.parseInt(middle.slice(16), 16) * 0x1000000).toString(16)}`;
    const cluster = await restoreAndStart(env, {
      waitForPromotion: false,
      beforeStart: (dataDir) =>
        appendFileSync(join(dataDir, 'postgresql.auto.conf'), `recovery_target_lsn = '${lsn}'\nrecovery_target_action = 'pause'\n`),
    });
    await waitFor('recovery paused at the target', async () =>
      (await cluster.psql('SELECT pg_get_wal_replay_pause_state()')) === 'paused' ? true : undefined,
    );
    const spool = spoolDirectory(cluster.dataDir, systemIdentifier, false);
    // Published in place beyond the target: in pg_wal under their names, each with its note.
    const spooled = await waitFor('segments published beyond the target', async () => {
      const entries = readdirSync(spool).flatMap((entry) => parseNoteName(entry)?.name ?? []);
      return entries.length >= 2 ? entries : undefined;
    });
    assert.ok(
      spooled.some((entry) => entry > middle),
      spooled.join(', '),
    );
    for (const name of spooled) assert.ok(existsSync(join(cluster.dataDir, 'pg_wal', name)), name);
    // The prefetcher (alive: recovery took a segment moments ago) holds no BACKUP_* or AWS_*
    // in its environment and nothing but its subcommand in argv.
    const pid = readFileSync(join(cluster.dataDir, SPOOL_ROOT, 'prefetcher.lock'), 'utf8').trim();
    const environment = procEnviron(readFileSync(`/proc/${pid}/environ`, 'utf8'));
    assert.deepEqual(
      environment
        .filter((entry) => !Object.entries(SEGMENT_WORKER_ENV).some(([name, value]) => entry === `${name}=${value}`))
        .map((entry) => entry.slice(0, entry.indexOf('=')))
        .filter((name) => !/^(PATH|LANG|LANGUAGE|TZ|TMPDIR|LC_.*)$/.test(name)),
      [],
    );
    // ...and the segment workers' allocator settings (process/segment-worker-flags.ts).
    for (const [name, value] of Object.entries(SEGMENT_WORKER_ENV)) assert.ok(environment.includes(`${name}=${value}`), name);
    // argv: node, the segment workers' V8 flags, bin/pms-backup.js, the subcommand.
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    assert.deepEqual(argv.slice(1, -3), [...SEGMENT_WORKER_NODE_FLAGS], argv.join(' '));
    assert.match(argv.at(-3) ?? '', /pms-backup\.js$/);
    assert.deepEqual(argv.slice(-2), ['wal-prefetch', 'run']);
    // Every one of its threads runs at BACKGROUND_NICE, below the startup process (nice 0).
    const nices = readdirSync(`/proc/${pid}/task`).map((task) => {
      const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    });
    assert.ok(nices.length > 1 && nices.every((nice) => nice === BACKGROUND_NICE), nices.join(','));
    await cluster.stop('immediate');
    appendFileSync(join(cluster.dataDir, 'postgresql.auto.conf'), `recovery_target_lsn = ''\n`);
    await cluster.start();
    await waitFor('recovery to finish and promote', async () =>
      (await cluster.psql('SELECT pg_is_in_recovery()')) === 'f' ? true : undefined,
    );
    assert.equal(await rows(cluster), expectedRows);
    await waitFor('the spool removed', async () => (existsSync(join(cluster.dataDir, SPOOL_ROOT)) ? undefined : true));
  });

  test('a tampered object never enters the spool, and wal-fetch of it exits 200 leaving nothing at %p', async () => {
    // One segment's ciphertext changed in the middle, in place (the file repository keys an
    // object's metadata to its inode), and put back afterwards.
    const repo = fixture.repoRoot;
    const victim = archived[2]!;
    const object = join(repo, 'wal', '00000001', `${victim}.zst.gpg`);
    const original = readFileSync(object);
    const bytes = Buffer.from(original);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] ?? 0) ^ 0x40;
    writeFileSync(object, bytes);
    try {
      const dataDir = recoveringDataDir('tampered-data');
      const directory = spoolDirectory(dataDir, systemIdentifier, false);
      mkdirSync(directory, { recursive: true });
      markWanted(directory, archived[0]!);
      const logged: string[] = [];
      const outcome = await runPrefetcher({
        storage: new FsStorage(repo),
        keys,
        trust,
        dataDir,
        directory,
        systemIdentifier,
        depth: 4,
        maxBytes: 1 << 30,
        idleMs: 0,
        log: (line) => logged.push(line),
      });
      const spooled = readdirSync(directory).filter((entry) => parseWalFileName(entry)?.kind === 'segment');
      assert.deepEqual(spooled, [archived[1], archived[3], archived[4]].filter(Boolean).sort(), logged.join('\n'));
      assert.equal(outcome.failed, 1);
      assert.match(
        logged.join('\n'),
        new RegExp(`${victim} failed.*PMS_ERR_INTEGRITY|${victim} failed.*(integrity|sha256|MDC|corrupt)`, 'i'),
      );
      assert.deepEqual(
        readdirSync(directory).filter((entry) => entry.startsWith('.pms-fetch-') && !entry.includes('wanted')),
        [],
      );
      // Recovery's own request for it: fetched fresh, refused, fatal for PostgreSQL.
      const fetch = await runCli(
        'pms-backup',
        ['wal-fetch', victim, 'pg_wal/RECOVERYXLOG'],
        { ...env, BACKUP_REPOSITORY: `file://${repo}`, BACKUP_WAL_PREFETCH: '0' },
        { cwd: dataDir },
      );
      assert.equal(fetch.code, 200, fetch.stderr);
      assert.ok(!existsSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')));
      // A spooled neighbour is served by the fast path without any configuration at all.
      const hit = await runCli('pms-backup', ['wal-fetch', archived[1]!, 'pg_wal/RECOVERYXLOG'], {}, { cwd: dataDir });
      assert.equal(hit.code, 0, hit.stderr);
      assert.ok(existsSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')));
      assert.ok(!existsSync(join(directory, archived[1]!)), 'a hit is moved, not copied');
    } finally {
      writeFileSync(object, original);
    }
  });

  test('the prefetcher claims each segment it fetches until it is in the spool, adopts the head claim, and leaves no claim behind', async () => {
    const dataDir = recoveringDataDir('claims-data');
    const directory = spoolDirectory(dataDir, systemIdentifier, false);
    mkdirSync(directory, { recursive: true });
    markWanted(directory, archived[0]!);
    const head = claimFetch(directory, archived[1]!);
    // A claim of a prefetcher that died: removed at the start, never waited on again.
    const dead = join(directory, `.pms-fetch-claim-999999999-${archived[4]}`);
    writeFileSync(dead, '');
    const created: string[] = [];
    const watcher = watch(directory, (_event, file) => {
      if (file !== null && existsSync(join(directory, file))) created.push(file);
    });
    try {
      await prefetchFor(dataDir, directory, { depth: 3, idleMs: 0, headClaim: { name: archived[1]!, path: head } });
    } finally {
      watcher.close();
    }
    const entries = readdirSync(directory);
    assert.deepEqual(entries.filter((entry) => parseWalFileName(entry)?.kind === 'segment').sort(), archived.slice(1, 4));
    assert.deepEqual(
      entries.filter((entry) => entry.startsWith('.pms-fetch-')),
      [],
      'no claim or temporary file is left',
    );
    const claims = new Set(created.filter((entry) => entry.startsWith('.pms-fetch-claim-')));
    for (const name of archived.slice(2, 4)) assert.ok(claims.has(`.pms-fetch-claim-${process.pid}-${name}`), [...claims].join(', '));
    assert.ok(![...claims].some((entry) => entry.endsWith(archived[1]!) && entry !== head.split('/').pop()), 'the head claim was adopted');
  });

  test('the prefetcher keeps the newest used note (PostgreSQL re-reads the last segment before it promotes) and drops the older ones', async () => {
    // The prefetcher stops once the process postmaster.pid names is gone: this test's own stands in.
    const { dataDir, directory } = serverRunDataDir('notes-data', process.pid);
    const noteOf = (name: string) => readdirSync(directory).find((entry) => entry.startsWith(`${name}@`));
    const controller = new AbortController();
    const running = prefetchFor(dataDir, directory, { signal: controller.signal });
    try {
      const [first, second] = [archived[1]!, archived[2]!];
      const notes = await waitFor('two segments published', async () => {
        const one = noteOf(first);
        const two = noteOf(second);
        return one && two ? [one, two] : undefined;
      });
      // What restore_command's shell does for each, in order.
      for (const note of notes) writeFileSync(join(directory, note), USED_NOTE);
      await waitFor(`the note of ${first} dropped`, async () => (noteOf(first) === undefined ? true : undefined));
      await sleep(500);
      assert.equal(noteOf(second), notes[1], `the newest used note stays: ${readdirSync(directory).join(', ')}`);
      assert.equal(readFileSync(join(directory, notes[1]!), 'utf8'), USED_NOTE);
      // The miss at the end of the archive marks the segment after the last: the note stays.
      markWanted(directory, archived[4]!);
      await sleep(500);
      assert.equal(noteOf(second), notes[1], 'kept after a request for a later segment');
      assert.ok(
        existsSync(join(dataDir, 'pg_wal', first)) && existsSync(join(dataDir, 'pg_wal', second)),
        'published files are never deleted',
      );
    } finally {
      controller.abort();
      await running;
    }
  });

  test('the prefetcher stops once the server it saw is gone (postmaster.pid names a dead process), leaving no claim', async () => {
    const postmaster = spawn('sleep', ['600'], { stdio: 'ignore' });
    const { dataDir, directory } = serverRunDataDir('server-gone-data', postmaster.pid!);
    const logged: string[] = [];
    const running = prefetchFor(dataDir, directory, { log: (line) => logged.push(line) });
    await waitFor('a segment published', async () => (existsSync(join(dataDir, 'pg_wal', archived[1]!)) ? true : undefined));
    const gone = new Promise((resolve) => postmaster.once('exit', resolve));
    postmaster.kill('SIGKILL');
    await gone;
    // Its postmaster.pid stays, as a killed server's does: the process it names is what counts.
    const outcome = await running;
    assert.equal(outcome.reason, 'server-stopped', logged.join('\n'));
    assert.match(logged.join('\n'), new RegExp(`the server ${postmaster.pid}-1764700000 stopped`));
    assert.deepEqual(
      readdirSync(directory).filter((entry) => entry.startsWith('.pms-fetch-') && !entry.includes('-wanted-')),
      [],
      'no claim or temporary file is left',
    );
  });

  test("the history probe that opens a recovery starts the prefetcher on the base backup's first segment, and only before any request", async () => {
    // restore --pitr's directory before its server starts: backup_label and the primary's pg_control
    // (in production) are what PostgreSQL's first restore_command call finds.
    const dataDir = join(fixture.work, 'head-start');
    await restorePitr({ storage: new FsStorage(fixture.repoRoot), keys, trust, target: 'latest', dataDir });
    const start = backupStartSegment(dataDir) ?? assert.fail(readFileSync(join(dataDir, 'backup_label'), 'utf8'));
    const directory = spoolDirectory(dataDir, systemIdentifier, false);
    // A timeline no test reaches (the servers the other tests promote archive 00000002.history).
    const probe = () =>
      runCli('pms-backup', ['wal-fetch', '--promote-at-end', '00000063.history', 'pg_wal/RECOVERYHISTORY'], env, { cwd: dataDir });
    try {
      const first = await probe();
      assert.equal(first.code, 1, first.stderr);
      assert.equal(readWanted(directory), wantedBefore(start));
      // The prefetcher fetches the start segment itself (no server runs, so into the spool), and
      // stays while backup_label says recovery has not begun, whatever the copied pg_control says.
      await waitFor(`${start} in the spool`, async () => (existsSync(join(directory, start)) ? true : undefined));
      await sleep(5_500);
      assert.ok(existsSync(join(dataDir, SPOOL_ROOT, 'prefetcher.lock')), 'the prefetcher is still there after the end grace');
      // Once recovery asked for a segment, a later history probe leaves the request alone.
      markWanted(directory, archived[3]!);
      const later = await probe();
      assert.equal(later.code, 1, later.stderr);
      assert.equal(readWanted(directory), archived[3]);
      assert.ok(!existsSync(join(dataDir, 'promote')), 'a history file never asks for promotion');
    } finally {
      const clean = await runCli('pms-backup', ['wal-prefetch', 'clean'], env, { cwd: dataDir });
      assert.equal(clean.code, 0, clean.stderr);
    }
    assert.ok(!existsSync(join(dataDir, SPOOL_ROOT)));
  });

  test("wal-fetch's fast path starts the prefetcher for the opening history probe itself, before the configuration and OpenPGP load, and still leaves the answer to the full wal-fetch", async () => {
    const dataDir = join(fixture.work, 'head-start-fast');
    await restorePitr({ storage: new FsStorage(fixture.repoRoot), keys, trust, target: 'latest', dataDir });
    const start = backupStartSegment(dataDir) ?? assert.fail('no backup_label');
    const directory = spoolDirectory(dataDir, systemIdentifier, false);
    // The fast path reads its environment as restore_command's process would.
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      const handled = await serveFromSpool(['--promote-at-end', '00000063.history', 'pg_wal/RECOVERYHISTORY'], dataDir);
      assert.equal(handled, false, 'a history file is always answered by the full wal-fetch');
      assert.equal(readWanted(directory), wantedBefore(start));
      await waitFor(`${start} in the spool`, async () => (existsSync(join(directory, start)) ? true : undefined));
      // Off means off: no spool for a data directory whose server runs with BACKUP_WAL_PREFETCH=0.
      const off = join(fixture.work, 'head-start-off');
      await restorePitr({ storage: new FsStorage(fixture.repoRoot), keys, trust, target: 'latest', dataDir: off });
      process.env['BACKUP_WAL_PREFETCH'] = '0';
      assert.equal(await serveFromSpool(['00000063.history', 'pg_wal/RECOVERYHISTORY'], off), false);
      assert.ok(!existsSync(join(off, SPOOL_ROOT)), 'no spool is made');
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
      Object.assign(process.env, saved);
      const clean = await runCli('pms-backup', ['wal-prefetch', 'clean'], env, { cwd: dataDir });
      assert.equal(clean.code, 0, clean.stderr);
    }
  });

  test('BACKUP_WAL_PREFETCH=0: restore_command is plain wal-fetch, no spool is made, and recovery reaches the same rows', async () => {
    const cluster = await restoreAndStart({ ...env, BACKUP_WAL_PREFETCH: '0' }, { prefetch: false });
    assert.equal(await rows(cluster), expectedRows);
    const auto = readFileSync(join(cluster.dataDir, 'postgresql.auto.conf'), 'utf8');
    assert.match(auto, /restore_command = '''[^']+'' ''[^']+'' wal-fetch --promote-at-end %f %p'/);
    assert.match(serverLog(cluster), /not archived, the end of the archive: asked the server \(pid \d+\) to promote/);
    // recovery_end_command echoes a prefetcher's log into the server's: there was none.
    assert.doesNotMatch(serverLog(cluster), /prefetcher/);
    assert.ok(!existsSync(join(cluster.dataDir, SPOOL_ROOT)));
  });
});
