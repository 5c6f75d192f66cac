// test-layer: alone: kills wal-push mid-upload and waits on PostgreSQL's archiver
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  type FSWatcher,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startThrowawayCluster, type ThrowawayCluster } from '../postgres/throwaway-cluster.js';
import { type ArchiveFixture, PG_UID, createArchiveFixture } from '../testing/archive-fixture.js';
import { binPath, runCli } from '../testing/run-cli.js';
import { generateGpgKeyPair, signingEnv } from '../testing/gpg-keys.js';
import { parseWalFileName, segmentName } from './wal-file-name.js';
import { WAL_PREFIX, walFileOfKey } from '../repository/wal-layout.js';
import { archiveCommand } from '../commands/restore/pitr/recovery-settings.js';
import { FsStorage } from '../storage/fs/fs-storage.js';

let fixture: ArchiveFixture;
let cluster: ThrowawayCluster;
let work: string;
let repoRoot: string;
let env: Record<string, string>;
let fakeDataDir: string;

/**
 * Plants an object with its metadata under `to`, as someone with write access to the bucket
 * would, readable by the server's OS user (the fs driver binds metadata to the file's inode, so
 * copying the files alone would lose it).
 */
async function plant(source: FsStorage, from: string, to: string, target = source): Promise<void> {
  const info = await source.head(from);
  await target.putBytes(to, await source.getBytes(from), { metadata: info?.metadata ?? {} });
  for (const path of [join(repoRoot, to), join(repoRoot, '.pms-meta', `${to}.json`)]) chownSync(path, PG_UID, -1);
  for (const dir of [dirname(join(repoRoot, to)), dirname(join(repoRoot, '.pms-meta', `${to}.json`))]) chownSync(dir, PG_UID, -1);
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs pms-backup as the postgres OS user, as the server would, in `cwd`. */
function runAsPostgres(args: string[], cwd: string, onSpawn?: (pid: number) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('runuser', ['-u', 'postgres', '--', process.execPath, binPath('pms-backup'), ...args], {
      cwd,
      env: { PATH: process.env['PATH'], ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', reject);
    child.once('spawn', () => onSpawn?.(child.pid ?? 0));
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, seconds = 60): Promise<T> {
  for (let i = 0; i < seconds * 10; i += 1) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * What wal-fetch left in pg_wal besides its prefetch spool (`.pms-prefetch/`, where only fully
 * verified segments are renamed, never the one refused).
 */
function leftInPgWal(dataDir: string): string[] {
  return readdirSync(join(dataDir, 'pg_wal')).filter((name) => name !== '.pms-prefetch');
}

function archivedNames(timeline = 1): string[] {
  const dir = join(repoRoot, WAL_PREFIX, segmentName(timeline, 0).slice(0, 8));
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((n) => !n.startsWith('.'))
        .map((n) => walFileOfKey(`wal/x/${n}`)?.name ?? n)
    : [];
}

async function switchAndWaitArchived(): Promise<string> {
  const name = await cluster.psql('SELECT pg_walfile_name(pg_current_wal_lsn()) FROM pg_switch_wal()');
  await waitFor(`${name} archived`, async () =>
    (await cluster.psql('SELECT last_archived_wal FROM pg_stat_archiver')) >= name ? true : undefined,
  );
  return name;
}

before(async () => {
  fixture = await createArchiveFixture('wal-test', { passphrase: 'wal passphrase' });
  ({ work, repoRoot } = fixture);
  env = { ...fixture.env };
  cluster = await startThrowawayCluster({
    settings: { archive_mode: 'on', wal_level: 'replica', archive_timeout: 0, archive_command: archiveCommand() },
    serverEnv: env,
  });
  // A stand-in data directory for wal-fetch: it only needs global/pg_control (the system id).
  fakeDataDir = join(work, 'fetch');
  mkdirSync(join(fakeDataDir, 'global'), { recursive: true });
  mkdirSync(join(fakeDataDir, 'pg_wal'));
  copyFileSync(join(cluster.dataDir, 'global', 'pg_control'), join(fakeDataDir, 'global', 'pg_control'));
  for (const path of [fakeDataDir, join(fakeDataDir, 'pg_wal'), join(fakeDataDir, 'global'), join(fakeDataDir, 'global', 'pg_control')])
    chownSync(path, PG_UID, -1);
  await cluster.psql('CREATE TABLE t (id int, payload text)');
  await cluster.psql("INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 50000) g");
  await switchAndWaitArchived();
});

after(async () => {
  await cluster?.destroy();
  fixture?.remove();
});

describe('wal-push / wal-fetch', () => {
  test('archive_command stores each segment encrypted under wal/<timeline>/ with the plaintext sha256 and system id in its metadata', async () => {
    const names = archivedNames();
    assert.ok(names.includes('000000010000000000000001'), `archived: ${names.join(', ')}`);
    const stored = readFileSync(join(repoRoot, 'wal/00000001/000000010000000000000001.zst.gpg'));
    assert.ok(!stored.includes(Buffer.from('xxxxxxxxxxxxxxxxxxxx')), 'no plaintext row data in the stored object');
    const sidecar = JSON.parse(readFileSync(join(repoRoot, '.pms-meta/wal/00000001/000000010000000000000001.zst.gpg.json'), 'utf8')) as {
      metadata: Record<string, string>;
    };
    const systemId = await cluster.psql('SELECT system_identifier FROM pg_control_system()');
    assert.equal(sidecar.metadata['pms-system-id'], systemId);
    assert.match(sidecar.metadata['pms-wal-sha256'] ?? '', /^[0-9a-f]{64}$/);
    assert.equal(JSON.parse(readFileSync(join(repoRoot, 'wal/system.json'), 'utf8')).systemIdentifier, systemId);
  });

  test('wal-fetch writes the exact segment (exit 0); a name not in the archive exits 1 and writes nothing', async () => {
    const name = '000000010000000000000001';
    const fetched = await runAsPostgres(['wal-fetch', name, 'pg_wal/RECOVERYXLOG'], fakeDataDir);
    assert.equal(fetched.code, 0, fetched.stderr);
    const copy = join(fakeDataDir, 'pg_wal', 'RECOVERYXLOG');
    const pushed = JSON.parse(readFileSync(join(repoRoot, `.pms-meta/wal/00000001/${name}.zst.gpg.json`), 'utf8')) as {
      metadata: Record<string, string>;
    };
    const { createHash } = await import('node:crypto');
    assert.equal(createHash('sha256').update(readFileSync(copy)).digest('hex'), pushed.metadata['pms-wal-sha256']);
    rmSync(copy);
    const missing = await runAsPostgres(['wal-fetch', '0000000100000000000000FE', 'pg_wal/RECOVERYXLOG'], fakeDataDir);
    assert.equal(missing.code, 1, missing.stderr);
    const history = await runAsPostgres(['wal-fetch', '00000002.history', 'pg_wal/RECOVERYHISTORY'], fakeDataDir);
    assert.equal(history.code, 1, 'an absent timeline history file is "not found", which recovery expects');
    assert.deepEqual(leftInPgWal(fakeDataDir), []);
  });

  test('wal-push of a %p that does not exist fails (non-zero) saying where %p must point, and archives nothing', async () => {
    const before = archivedNames();
    const pushed = await runAsPostgres(['wal-push', 'pg_wal/0000000100000000000000FD'], fakeDataDir);
    assert.notEqual(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stderr, /cannot read pg_wal\/0000000100000000000000FD \(ENOENT\).*%p must name a file in pg_wal/);
    assert.deepEqual(archivedNames(), before);
  });

  test('re-pushing an archived segment with identical content exits 0; different content under that name fails loudly and leaves the archive unchanged', async () => {
    const name = '000000010000000000000001';
    const dir = join(work, 'repush', 'pg_wal');
    mkdirSync(dir, { recursive: true });
    chownSync(join(work, 'repush'), PG_UID, -1);
    chownSync(dir, PG_UID, -1);
    const fetched = await runAsPostgres(['wal-fetch', name, join(dir, name)], fakeDataDir);
    assert.equal(fetched.code, 0, fetched.stderr);
    const before = readFileSync(join(repoRoot, `wal/00000001/${name}.zst.gpg`));
    const same = await runAsPostgres(['wal-push', `pg_wal/${name}`], join(work, 'repush'));
    assert.equal(same.code, 0, same.stderr);
    const bytes = readFileSync(join(dir, name));
    bytes[100_000] = bytes[100_000]! ^ 0xff;
    writeFileSync(join(dir, name), bytes);
    const different = await runAsPostgres(['wal-push', `pg_wal/${name}`], join(work, 'repush'));
    assert.equal(different.code, 7, different.stderr);
    assert.match(different.stderr, /PMS_ERR_WAL_CONFLICT/);
    assert.match(different.stderr, /already archived .* with different content/);
    assert.deepEqual(readFileSync(join(repoRoot, `wal/00000001/${name}.zst.gpg`)), before);
  });

  test('a .partial segment is archived but never served as the complete segment', async () => {
    // A promoted server leaves the last segment of the old timeline as <name>.partial.
    const name = '000000010000000000000001';
    const dir = join(work, 'partial', 'pg_wal');
    mkdirSync(dir, { recursive: true });
    chownSync(join(work, 'partial'), PG_UID, -1);
    chownSync(dir, PG_UID, -1);
    const fetched = await runAsPostgres(['wal-fetch', name, join(dir, 'segment')], fakeDataDir);
    assert.equal(fetched.code, 0, fetched.stderr);
    const partialName = '0000000100000000000000FD.partial';
    writeFileSync(join(dir, partialName), readFileSync(join(dir, 'segment')));
    chownSync(join(dir, partialName), PG_UID, -1);
    const pushed = await runAsPostgres(['wal-push', `pg_wal/${partialName}`], join(work, 'partial'));
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.ok(
      readdirSync(join(repoRoot, 'wal', '00000001')).some((f) => f.startsWith(`${partialName}.`)),
      'the partial is archived under its own name',
    );
    const asComplete = await runAsPostgres(['wal-fetch', '0000000100000000000000FD', 'pg_wal/RECOVERYXLOG'], fakeDataDir);
    assert.equal(asComplete.code, 1, 'requesting the complete segment finds nothing: a .partial is never served in its place');
    assert.deepEqual(leftInPgWal(fakeDataDir), []);
  });

  test('wal-fetch of a tampered segment exits above 125 (200) and leaves nothing at %p', async () => {
    const object = join(repoRoot, 'wal/00000001/000000010000000000000001.zst.gpg');
    const original = readFileSync(object);
    try {
      const tampered = Buffer.from(original);
      tampered[Math.floor(tampered.length / 2)] = tampered[Math.floor(tampered.length / 2)]! ^ 0x01;
      writeFileSync(object, tampered);
      const result = await runAsPostgres(['wal-fetch', '000000010000000000000001', 'pg_wal/RECOVERYXLOG'], fakeDataDir);
      assert.equal(result.code, 200, result.stderr);
      assert.match(result.stderr, /PMS_ERR_INTEGRITY/);
      assert.deepEqual(leftInPgWal(fakeDataDir), [], 'no segment and no temporary file left');
    } finally {
      writeFileSync(object, original);
    }
  });

  test('a genuine segment copied under another name is refused (exit 200, PMS_ERR_UNTRUSTED), and nothing reaches pg_wal', async () => {
    const from = 'wal/00000001/000000010000000000000001.zst.gpg';
    const to = 'wal/00000001/0000000100000000000000FC.zst.gpg';
    await plant(new FsStorage(repoRoot), from, to);
    try {
      const result = await runAsPostgres(['wal-fetch', '0000000100000000000000FC', 'pg_wal/RECOVERYXLOG'], fakeDataDir);
      assert.equal(result.code, 200, result.stderr);
      assert.match(
        result.stderr,
        /PMS_ERR_UNTRUSTED: wal\/00000001\/0000000100000000000000FC.zst.gpg is not trusted: its signature by [0-9A-F]{40} was made for wal\/00000001\/000000010000000000000001.zst.gpg/,
      );
      assert.deepEqual(leftInPgWal(fakeDataDir), []);
    } finally {
      rmSync(join(repoRoot, to));
      rmSync(join(repoRoot, '.pms-meta', `${to}.json`));
    }
  });

  test('a segment and a timeline history file signed by a key nobody trusts exit 200 (never 0, never 1), naming the signer', async () => {
    // The attacker holds the backup public key (it is public) and a signing key of their own,
    // archives into a scratch repository of theirs, and plants the objects in ours.
    const attacker = await generateGpgKeyPair({ name: 'Not Ours' });
    const scratch = join(work, 'attacker');
    const scratchRepo = join(scratch, 'repo');
    mkdirSync(join(scratch, 'pg_wal'), { recursive: true });
    mkdirSync(scratchRepo);
    for (const path of [scratch, join(scratch, 'pg_wal')]) chownSync(path, PG_UID, -1);
    try {
      const fetched = await runAsPostgres(['wal-fetch', '000000010000000000000001', join(scratch, 'segment')], fakeDataDir);
      assert.equal(fetched.code, 0, fetched.stderr);
      renameSync(join(scratch, 'segment'), join(scratch, 'pg_wal', '0000000100000000000000FB'));
      writeFileSync(join(scratch, 'pg_wal', '00000002.history'), '1\t0/3000000\tno recovery target specified\n');
      for (const file of ['pg_wal/0000000100000000000000FB', 'pg_wal/00000002.history']) {
        const pushed = await runCli(
          'pms-backup',
          ['wal-push', file],
          {
            ...env,
            BACKUP_REPOSITORY: `file://${scratchRepo}`,
            ...signingEnv(attacker),
          },
          { cwd: scratch },
        );
        assert.equal(pushed.code, 0, pushed.stderr);
      }
      for (const key of ['wal/00000001/0000000100000000000000FB.zst.gpg', 'wal/history/00000002.history.zst.gpg']) {
        await plant(new FsStorage(scratchRepo), key, key, new FsStorage(repoRoot));
      }
      const segment = await runAsPostgres(['wal-fetch', '0000000100000000000000FB', 'pg_wal/RECOVERYXLOG'], fakeDataDir);
      assert.equal(segment.code, 200, segment.stderr);
      assert.match(
        segment.stderr,
        new RegExp(`PMS_ERR_UNTRUSTED: .* signed by ${attacker.fingerprint}, which is not in BACKUP_TRUSTED_SIGNERS_FILE`),
      );
      const history = await runAsPostgres(['wal-fetch', '00000002.history', 'pg_wal/RECOVERYHISTORY'], fakeDataDir);
      assert.equal(history.code, 200, history.stderr);
      assert.match(history.stderr, /PMS_ERR_UNTRUSTED/);
      assert.deepEqual(leftInPgWal(fakeDataDir), []);
    } finally {
      for (const key of ['wal/00000001/0000000100000000000000FB.zst.gpg', 'wal/history/00000002.history.zst.gpg']) {
        rmSync(join(repoRoot, key), { force: true });
        rmSync(join(repoRoot, '.pms-meta', `${key}.json`), { force: true });
      }
      attacker.remove();
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  test('wal-fetch refuses WAL of a different system identifier (exit 200)', async () => {
    const other = join(work, 'other-system');
    mkdirSync(join(other, 'global'), { recursive: true });
    mkdirSync(join(other, 'pg_wal'));
    const control = readFileSync(join(cluster.dataDir, 'global', 'pg_control'));
    control.writeBigUInt64LE(control.readBigUInt64LE(0) + 1n, 0);
    writeFileSync(join(other, 'global', 'pg_control'), control);
    chownSync(other, PG_UID, -1);
    chownSync(join(other, 'pg_wal'), PG_UID, -1);
    const result = await runAsPostgres(['wal-fetch', '000000010000000000000001', 'pg_wal/RECOVERYXLOG'], other);
    assert.equal(result.code, 200, result.stderr);
    assert.match(result.stderr, /PMS_ERR_SYSTEM_MISMATCH/);
    assert.deepEqual(leftInPgWal(other), []);
  });

  test('wal-push killed with SIGKILL mid-upload leaves no object (fetch says not archived); the retry stores it and it fetches intact', async () => {
    const name = '0000000100000000000000F0';
    const dir = join(work, 'killed', 'pg_wal');
    mkdirSync(dir, { recursive: true });
    chownSync(join(work, 'killed'), PG_UID, -1);
    // A real segment header (this system) followed by incompressible bytes: slow enough to interrupt.
    const segment = Buffer.concat([
      readFileSync(join(cluster.dataDir, 'pg_wal', await cluster.psql('SELECT pg_walfile_name(pg_current_wal_lsn())'))).subarray(0, 8192),
      randomBytes(16 * 1024 * 1024 - 8192),
    ]);
    writeFileSync(join(dir, name), segment);
    chownSync(join(dir, name), PG_UID, -1);
    chownSync(dir, PG_UID, -1);
    const timelineDir = join(repoRoot, 'wal', '00000001');
    let killed = false;
    let watcher: FSWatcher | undefined;
    const run = await runAsPostgres(['wal-push', `pg_wal/${name}`], join(work, 'killed'), (pid) => {
      // runuser's only child is node, the process that writes. Find it first, then kill it from the
      // inotify callback the moment the upload's temporary file appears: polling missed the
      // window on a fast machine (the whole 16 MiB write took less than one poll interval).
      void (async () => {
        let node = 0;
        for (let i = 0; i < 1000 && node === 0; i += 1) {
          try {
            node = Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0] ?? 0) || 0;
          } catch {
            return;
          }
          if (node === 0) await sleep(5);
        }
        if (node === 0) return;
        watcher = watch(timelineDir, (_event, file) => {
          if (killed || !String(file ?? '').startsWith('.pms-tmp-')) return;
          try {
            process.kill(node, 'SIGKILL');
            killed = true;
          } catch {
            // Already gone: the assertion below reports it.
          }
          watcher?.close();
        });
      })();
    });
    watcher?.close();
    assert.ok(killed, 'wal-push was killed');
    assert.notEqual(run.code, 0, `wal-push must not succeed when killed: ${run.stderr}`);
    // wal-push encrypts a segment in memory and then writes it in one go, so the kill lands
    // either before the object is committed (nothing under the key: "not archived") or after
    // (the whole object with its metadata): never a partial object, never one without its seal.
    const afterKill = await runAsPostgres(['wal-fetch', name, 'pg_wal/RECOVERYXLOG'], fakeDataDir);
    if (existsSync(join(timelineDir, `${name}.zst.gpg`))) {
      assert.equal(afterKill.code, 0, `a committed object is whole and trusted: ${afterKill.stderr}`);
      assert.deepEqual(readFileSync(join(fakeDataDir, 'pg_wal', 'RECOVERYXLOG')), segment);
      rmSync(join(fakeDataDir, 'pg_wal', 'RECOVERYXLOG'));
    } else {
      assert.equal(afterKill.code, 1, 'a killed upload is "not archived", never a corrupt segment');
    }
    const retry = await runAsPostgres(['wal-push', `pg_wal/${name}`], join(work, 'killed'));
    assert.equal(retry.code, 0, retry.stderr);
    const fetched = await runAsPostgres(['wal-fetch', name, 'pg_wal/RECOVERYXLOG'], fakeDataDir);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.deepEqual(readFileSync(join(fakeDataDir, 'pg_wal', 'RECOVERYXLOG')), segment);
    rmSync(join(fakeDataDir, 'pg_wal', 'RECOVERYXLOG'));
    rmSync(join(timelineDir, `${name}.zst.gpg`));
  });

  test('repository unreachable: archive_command fails and PostgreSQL retries; once it is back, no segment is missing', async () => {
    const hidden = `${repoRoot}.away`;
    const failedBefore = Number(await cluster.psql('SELECT failed_count FROM pg_stat_archiver'));
    renameSync(repoRoot, hidden);
    let last: string;
    try {
      for (let i = 0; i < 3; i += 1) {
        await cluster.psql(`INSERT INTO t SELECT g, repeat('y', 200) FROM generate_series(1, 20000) g`);
        await cluster.psql('SELECT pg_switch_wal()');
      }
      last = await cluster.psql('SELECT pg_walfile_name(pg_current_wal_lsn() - 1)');
      await waitFor('archive failures', async () =>
        Number(await cluster.psql('SELECT failed_count FROM pg_stat_archiver')) > failedBefore ? true : undefined,
      );
      assert.ok(
        Number(await cluster.psql("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'")) > 0,
        '.ready files pile up while the repository is away',
      );
    } finally {
      renameSync(hidden, repoRoot);
    }
    const previous = segmentName(
      1,
      parseWalFileName(last)!.kind === 'segment' ? (parseWalFileName(last) as { segment: number }).segment - 1 : 0,
    );
    await waitFor(
      'the backlog to drain',
      async () => ((await cluster.psql('SELECT last_archived_wal FROM pg_stat_archiver')) >= previous ? true : undefined),
      120,
    );
    // Only up to what PostgreSQL has been told is archived: segments after it may still be in
    // flight (wal-push archives ahead), and CI once caught one mid-upload.
    const archived = new Set(archivedNames().filter((n) => /^[0-9A-F]{24}$/.test(n)));
    const drained = (parseWalFileName(previous) as { segment: number }).segment;
    for (let segment = 1; segment <= drained; segment += 1) {
      assert.ok(archived.has(segmentName(1, segment)), `segment ${segmentName(1, segment)} is archived`);
    }
  });
});
