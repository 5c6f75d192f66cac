import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ThrowawayCluster, startThrowawayCluster } from '../../../postgres/throwaway-cluster.js';
import { type ArchiveFixture, createArchiveFixture } from '../../../testing/archive-fixture.js';
import { type CliResult, runCli } from '../../../testing/run-cli.js';
import { archiveCommand } from './recovery-settings.js';

/**
 * The review's attack on restore --pitr went through a crafted tar holding postgresql.auto.conf
 * and recovery.signal as symbolic links to files of root's. Could the real pipeline produce
 * such a tar from a data directory someone planted links in? No: PostgreSQL 15's BASE_BACKUP
 * copies links only as pg_tblspc/<oid> (tablespaces, which base-backup refuses) and skips any
 * other ("skipping special file"). This proves it end to end, and that restore --pitr and
 * verify of such a backup write nothing through the links. A tar that does hold a link was
 * therefore crafted: inspect-extracted.ts refuses it (extraction-defence.test.ts).
 */
let fixture: ArchiveFixture;
let source: ThrowawayCluster;
let env: Record<string, string>;
let victims: string;
let baseId: string;

const cli = (args: string[]): Promise<CliResult> => runCli('pms-backup', args, { ...source.postgresEnv, ...env });

const VICTIMS = { auto: "root's configuration\n", signal: "root's other file\n" } as const;

function assertVictimsUntouched(): void {
  for (const [name, content] of Object.entries(VICTIMS)) {
    const path = join(victims, name);
    const info = statSync(path);
    assert.equal(readFileSync(path, 'utf8'), content, `${path}: content unchanged`);
    assert.deepEqual([info.uid, info.gid, info.mode & 0o7777], [0, 0, 0o644], `${path}: owner and mode unchanged`);
  }
}

before(async () => {
  assert.equal(process.getuid?.(), 0, 'the attack is on what root does: run as root');
  fixture = await createArchiveFixture('crafted-base');
  env = { ...fixture.env, POSTGRES_DB: 'clinic' };
  victims = mkdtempSync(join(tmpdir(), 'pms-victims-'));
  for (const [name, content] of Object.entries(VICTIMS)) writeFileSync(join(victims, name), content, { mode: 0o644 });
  source = await startThrowawayCluster({
    settings: { archive_mode: 'on', wal_level: 'replica', archive_command: archiveCommand() },
    serverEnv: fixture.env,
  });
  await source.psql('CREATE DATABASE clinic');
  await source.psql("CREATE TABLE reading (id int PRIMARY KEY, label text); INSERT INTO reading VALUES (1, 'one')", 'clinic');

  // The running server read postgresql.auto.conf at start; it does not notice the swap.
  const auto = join(source.dataDir, 'postgresql.auto.conf');
  renameSync(auto, `${auto}.real`);
  symlinkSync(join(victims, 'auto'), auto);
  symlinkSync(join(victims, 'signal'), join(source.dataDir, 'recovery.signal'));
  try {
    const base = await cli(['base-backup', '--json']);
    assert.equal(base.code, 0, base.stderr);
    baseId = (JSON.parse(base.stdout) as { id: string }).id;
  } finally {
    rmSync(auto);
    rmSync(join(source.dataDir, 'recovery.signal'));
    renameSync(`${auto}.real`, auto);
  }
});

after(async () => {
  await source?.destroy();
  fixture?.remove();
  if (victims) rmSync(victims, { recursive: true, force: true });
});

describe('a base backup of a data directory with planted links', () => {
  test("BASE_BACKUP skipped the links: restore --pitr writes its own regular files and root's files are untouched", async () => {
    const pgdata = join(fixture.work, 'restored');
    const result = await cli(['restore', '--pitr', '--target-time', 'latest', '--pgdata', pgdata]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assertVictimsUntouched();
    for (const name of ['postgresql.auto.conf', 'standby.signal']) {
      const info = lstatSync(join(pgdata, name));
      assert.ok(info.isFile() && info.nlink === 1, `${name} is a regular file of the restore's own`);
      assert.notEqual(info.uid, 0, `${name} belongs to the server's OS user`);
    }
    // The backup held no postgresql.auto.conf at all (the link was skipped): only the recovery settings.
    assert.match(readFileSync(join(pgdata, 'postgresql.auto.conf'), 'utf8'), /^\n# pms-backup restore --pitr: base backup /);
    rmSync(pgdata, { recursive: true, force: true });
  });

  test('verify of that base backup passes and touches nothing outside its sandbox', async () => {
    const result = await cli(['verify', baseId, '--json']);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assertVictimsUntouched();
  });
});
