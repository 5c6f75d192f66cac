// test-layer: alone: kills the background pusher mid-upload and waits on PostgreSQL's archiver
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { type FSWatcher, existsSync, readFileSync, readdirSync, renameSync, rmSync, watch, writeFileSync, chownSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startThrowawayCluster, type ThrowawayCluster } from '../postgres/throwaway-cluster.js';
import { type ArchiveFixture, PG_UID, createArchiveFixture } from '../testing/archive-fixture.js';
import { type PushgatewayHarness, startPushgateway } from '../testing/pushgateway-harness.js';
import { binPath } from '../testing/run-cli.js';
import { archiveCommand } from '../commands/restore/pitr/recovery-settings.js';
import { IN_FLIGHT_PREFIX, LINK_SUFFIX, MARKER_DIR, PUSHER_PID_FILE, postmasterOf } from '../commands/wal-push/push-marker.js';
import { pusherAddress } from '../commands/wal-push/pusher-socket.js';
import { parseWalFileName, segmentName } from './wal-file-name.js';
import { SEGMENT_WORKER_ENV, SEGMENT_WORKER_NODE_FLAGS } from '../process/segment-worker-flags.js';
import { procEnviron } from '../testing/proc-environ.js';

// Issue 15 item 2: with the server running, wal-push hands its file to one background pusher per
// pg_wal that archives the whole backlog ahead and answers each call once its file is stored.
// The server's own archive_command fails here until the last test, so the test plays
// PostgreSQL: it decides which wal-push runs when, and what a .ready file is.

let fixture: ArchiveFixture;
let cluster: ThrowawayCluster;
let gateway: PushgatewayHarness;
let env: Record<string, string>;
let walDir: string;
let repoRoot: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs pms-backup as the server would: its OS user, in the data directory, with `input` on stdin. */
function runAsPostgres(args: string[], input = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('runuser', ['-u', 'postgres', '--', process.execPath, binPath('pms-backup'), ...args], {
      cwd: cluster.dataDir,
      env: { PATH: process.env['PATH'], ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, seconds = 60): Promise<T> {
  for (let i = 0; i < seconds * 20; i += 1) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Pids of wal-pusher processes serving this cluster's pg_wal. */
function pushers(): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return argv.includes('wal-pusher') && argv.includes(walDir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function stopPushers(): Promise<void> {
  for (const pid of pushers()) process.kill(pid, 'SIGKILL');
  await waitFor('the pushers to be gone', () => (pushers().length === 0 ? true : undefined));
}

/** Finishes `count` WAL segments; PostgreSQL marks each .ready (its archive_command fails). */
async function makeSegments(count: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < count; i += 1) {
    await cluster.psql('INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g');
    names.push(await cluster.psql('SELECT pg_walfile_name(pg_current_wal_lsn()) FROM pg_switch_wal()'));
  }
  for (const name of names)
    await waitFor(`${name}.ready`, () => (existsSync(join(walDir, 'archive_status', `${name}.ready`)) ? true : undefined));
  return names;
}

const archivedObject = (name: string): string => join(repoRoot, 'wal', name.slice(0, 8), `${name}.zst.gpg`);
/** Whether a note (named `<file>@<postmaster>`, push-marker.ts) exists for `name`; its proof link alone vouches for nothing. */
const hasMarker = (name: string): boolean => {
  try {
    return readdirSync(join(walDir, MARKER_DIR)).some((entry) => entry.startsWith(`${name}@`) && !entry.endsWith(LINK_SUFFIX));
  } catch {
    return false;
  }
};

before(async () => {
  fixture = await createArchiveFixture('pusher');
  repoRoot = fixture.repoRoot;
  gateway = await startPushgateway();
  env = { ...fixture.env, PUSHGATEWAY_URL: gateway.url, PUSHGATEWAY_INSTANCE: 'pusher_test' };
  cluster = await startThrowawayCluster({
    settings: { archive_mode: 'on', wal_level: 'replica', archive_timeout: 0, archive_command: 'false' },
    serverEnv: env,
  });
  walDir = join(cluster.dataDir, 'pg_wal');
  await cluster.psql('CREATE TABLE t (id int, payload text)');
});

after(async () => {
  await stopPushers().catch(() => undefined);
  await cluster?.destroy();
  await gateway?.stop();
  fixture?.remove();
});

describe('wal-push background pusher', () => {
  test('one wal-push starts one pusher that archives the whole backlog ahead; the later calls are answered from its markers; its environment and argv hold no secret', async () => {
    const names = await makeSegments(6);
    const first = await runAsPostgres(['wal-push', `pg_wal/${names[0]}`]);
    assert.equal(first.code, 0, first.stderr);
    assert.ok(existsSync(archivedObject(names[0]!)), 'the requested segment is stored before wal-push exits 0');
    assert.equal(hasMarker(names[0]!), false, 'its marker was consumed by the call that acknowledged it');
    for (const name of names.slice(1)) await waitFor(`${name} archived ahead`, () => (hasMarker(name) ? true : undefined));
    for (const name of names.slice(1)) assert.ok(existsSync(archivedObject(name)), `${name}: a marker exists only for a stored object`);
    const pids = pushers();
    assert.equal(pids.length, 1, 'exactly one pusher serves the directory');
    // The shell's cues (archive-command.ts): pusher.pid names it; a file archived is no longer held.
    assert.equal(readFileSync(join(walDir, MARKER_DIR, PUSHER_PID_FILE), 'utf8').trim(), `${pids[0]} ${await postmasterOf(walDir)}`);
    const holds = readdirSync(join(walDir, MARKER_DIR)).filter((entry) => entry.startsWith(IN_FLIGHT_PREFIX));
    for (const name of names.slice(1))
      assert.ok(!holds.includes(`${IN_FLIGHT_PREFIX}${name}`), `${name} is still held: ${holds.join(', ')}`);
    const environ = procEnviron(readFileSync(`/proc/${pids[0]}/environ`, 'utf8'));
    assert.deepEqual(
      environ.filter((v) => /^(BACKUP_|AWS_|PUSHGATEWAY_|HOME=)/.test(v)),
      [],
      `only the allowlisted child environment: ${environ.map((v) => v.split('=')[0]).join(', ')}`,
    );
    for (const [name, value] of Object.entries(SEGMENT_WORKER_ENV))
      assert.ok(environ.includes(`${name}=${value}`), `${name}: ${environ.join(' ')}`);
    const argv = readFileSync(`/proc/${pids[0]}/cmdline`, 'utf8');
    assert.ok(!argv.includes(readFileSync(fixture.env['BACKUP_SIGNING_PASSPHRASE_FILE'] ?? fixture.key.privateKeyFile, 'utf8').trim()));
    assert.ok(!/BACKUP_|passphrase/i.test(argv), argv);
    // Started with the segment workers' V8 flags (process/segment-worker-flags.ts), before its script.
    assert.deepEqual(argv.split('\0').slice(1, 1 + SEGMENT_WORKER_NODE_FLAGS.length), [...SEGMENT_WORKER_NODE_FLAGS], argv);
    for (const name of names.slice(1)) {
      const later = await runAsPostgres(['wal-push', `pg_wal/${name}`]);
      assert.equal(later.code, 0, later.stderr);
      assert.equal(hasMarker(name), false);
    }
    // It reports the backlog it saw when it started (all six were .ready) to the Pushgateway.
    const backlog = await waitFor('the backlog metric', async () => {
      const samples = await gateway.find('pms_backup_wal_archive_ready_files', { command: 'wal-push', instance: 'pusher_test' });
      return samples.length > 0 ? samples : undefined;
    });
    assert.ok(backlog[0]!.value >= 5, `ready files reported: ${backlog[0]!.value}`);
    assert.equal((await gateway.find('pms_backup_wal_archive_oldest_ready_seconds', { command: 'wal-push' })).length, 1);
  });

  test('a second pusher for the same pg_wal finds the address held and leaves at once ("busy"): the address is the lock', async () => {
    assert.equal(pushers().length, 1);
    const settings = JSON.stringify(env);
    const second = await runAsPostgres(['wal-pusher', walDir], settings);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.trim(), 'busy');
    assert.equal(pushers().length, 1);
  });

  test("a repository that fails: wal-push exits non-zero with the reason, the .ready file and PostgreSQL's retry stay, no marker; once it is back the same call exits 0", async () => {
    const [name] = await makeSegments(1);
    const hidden = `${repoRoot}.away`;
    renameSync(repoRoot, hidden);
    try {
      const failed = await runAsPostgres(['wal-push', `pg_wal/${name}`]);
      assert.notEqual(failed.code, 0);
      assert.match(failed.stderr, /PMS_ERR_[A-Z_]+: /);
      assert.ok(existsSync(join(walDir, 'archive_status', `${name}.ready`)), 'the .ready file stays');
      assert.equal(hasMarker(name!), false, 'no marker for a file that was not stored');
      assert.equal(existsSync(join(hidden, 'wal', name!.slice(0, 8), `${name}.zst.gpg`)), false);
    } finally {
      renameSync(hidden, repoRoot);
    }
    const retried = await runAsPostgres(['wal-push', `pg_wal/${name}`]);
    assert.equal(retried.code, 0, retried.stderr);
    assert.ok(existsSync(archivedObject(name!)));
  });

  test('the pusher killed with SIGKILL mid-upload: the waiting wal-push exits non-zero, no marker is left, the next call starts a new pusher that stores the file intact', async () => {
    // A real header (this system) and incompressible bytes under a name PostgreSQL will not reach.
    const name = '0000000100000000000000F0';
    const [current] = readdirSync(walDir)
      .filter((n) => /^[0-9A-F]{24}$/.test(n))
      .sort();
    const segment = Buffer.concat([readFileSync(join(walDir, current!)).subarray(0, 8192), randomBytes(16 * 1024 * 1024 - 8192)]);
    writeFileSync(join(walDir, name), segment);
    chownSync(join(walDir, name), PG_UID, -1);
    try {
      const [pid] = pushers();
      assert.ok(pid, 'a pusher runs');
      const timelineDir = join(repoRoot, 'wal', '00000001');
      let killed = false;
      const hold = join(walDir, MARKER_DIR, `${IN_FLIGHT_PREFIX}${name}`);
      let heldDuringUpload = false;
      const watcher: FSWatcher = watch(timelineDir, (_event, file) => {
        if (killed || !String(file ?? '').startsWith('.pms-tmp-')) return;
        heldDuringUpload = existsSync(hold);
        process.kill(pid!, 'SIGKILL');
        killed = true;
        watcher.close();
      });
      const run = await runAsPostgres(['wal-push', `pg_wal/${name}`]);
      watcher.close();
      assert.ok(killed, 'the pusher was killed during the upload');
      assert.ok(heldDuringUpload, "the file is held while it is archived (archive_command's shell waits for it)");
      assert.notEqual(run.code, 0, `never acknowledged: ${run.stderr}`);
      assert.match(run.stderr, /PMS_ERR_ABORTED: .*stopped before it answered/);
      assert.equal(hasMarker(name), false, 'no marker');
      const retry = await runAsPostgres(['wal-push', `pg_wal/${name}`]);
      assert.equal(retry.code, 0, retry.stderr);
      assert.notEqual(pushers()[0], pid, 'a new pusher');
      assert.equal(existsSync(hold), false, "the killed pusher's hold was dropped by the new one, which released its own");
      const fetched = join(fixture.work, 'F0');
      const fetchEnv = { PATH: process.env['PATH'], ...env };
      const fetch = await new Promise<number | null>((resolve) =>
        spawn(process.execPath, [binPath('pms-backup'), 'wal-fetch', name, fetched], {
          cwd: cluster.dataDir,
          env: fetchEnv,
          stdio: 'ignore',
        }).once('close', resolve),
      );
      assert.equal(fetch, 0);
      assert.deepEqual(readFileSync(fetched), segment);
    } finally {
      rmSync(join(walDir, name), { force: true });
      rmSync(archivedObject(name), { force: true });
    }
  });

  test('a process squatting the pusher address cannot make wal-push acknowledge a file: the answer is a doorbell, only a marker proves storage', async () => {
    await stopPushers();
    const [name] = await makeSegments(1);
    const squatter = createServer((socket) => socket.on('data', () => socket.end('{"ok":true}\n')));
    const address = await pusherAddress(walDir);
    await new Promise<void>((resolve) => squatter.listen(address, resolve));
    try {
      const run = await runAsPostgres(['wal-push', `pg_wal/${name}`]);
      assert.notEqual(run.code, 0);
      assert.match(run.stderr, /PMS_ERR_INTEGRITY: .*no valid marker/);
      assert.equal(existsSync(archivedObject(name!)), false);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });

  test('PostgreSQL itself, archive_command = wal-push: the whole backlog is archived and acknowledged, none is missing', async () => {
    const backlog = await makeSegments(3);
    await cluster.psql(`ALTER SYSTEM SET archive_command = '${archiveCommand().replace(/'/g, "''")}'`);
    await cluster.psql('SELECT pg_reload_conf()');
    const last = backlog.at(-1)!;
    await waitFor(
      'the backlog to drain',
      async () => ((await cluster.psql('SELECT last_archived_wal FROM pg_stat_archiver')) >= last ? true : undefined),
      120,
    );
    const names = new Set(readdirSync(join(repoRoot, 'wal', '00000001')));
    for (let seg = 1; seg <= (parseWalFileName(last) as { segment: number }).segment; seg += 1) {
      assert.ok(names.has(`${segmentName(1, seg)}.zst.gpg`), `${segmentName(1, seg)} archived`);
    }
    assert.equal(Number(await cluster.psql("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'")), 0);
  });
});
