import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { REPO_ROOT, binPath, runCli } from '../testing/run-cli.js';

const COMMANDS = [
  'create',
  'list',
  'restore',
  'verify',
  'monitor',
  'prune',
  'keys',
  'audit',
  'doctor',
  'copy',
  'base-backup',
  'wal-push',
  'wal-fetch',
];

describe('pms-backup and pms-telemetry command lines', () => {
  test('--help lists every command, the configuration and the exit codes', async () => {
    const help = await runCli('pms-backup', ['--help'], {});
    assert.equal(help.code, 0);
    for (const command of COMMANDS) assert.match(help.stdout, new RegExp(`\\n  ${command}\\b`), `${command} listed`);
    assert.match(help.stdout, /BACKUP_REPOSITORY/);
    assert.match(help.stdout, /PMS_ERR_INTEGRITY/);
    for (const command of COMMANDS) {
      const sub = await runCli('pms-backup', [command, '--help'], {});
      assert.equal(sub.code, 0, `${command} --help`);
    }
    const telemetry = await runCli('pms-telemetry', ['--help'], {});
    assert.equal(telemetry.code, 0);
    assert.match(telemetry.stdout, /migrate/);
  });

  test('npx pms-backup works from the repository root, and the bin file runs by absolute path as another user', () => {
    const npx = spawnSync('npx', ['--no-install', 'pms-backup', '--help'], { cwd: REPO_ROOT, encoding: 'utf8' });
    assert.equal(npx.status, 0, npx.stderr);
    assert.match(npx.stdout, /Usage: pms-backup/);
    const asOther =
      process.getuid?.() === 0
        ? ['runuser', ['-u', 'postgres', '--', binPath('pms-backup'), '--help']]
        : [binPath('pms-backup'), ['--help']];
    const run = spawnSync(asOther[0] as string, asOther[1] as string[], { cwd: '/', encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /Usage: pms-backup/);
  });

  test('usage errors exit 64 with the reason; wal-fetch exits 200 instead, as restore_command must', async () => {
    const unknown = await runCli('pms-backup', ['frobnicate'], {});
    assert.equal(unknown.code, 64);
    assert.match(unknown.stderr, /PMS_ERR_USAGE/);
    const missing = await runCli('pms-backup', ['restore', 'latest'], {});
    assert.equal(missing.code, 64);
    assert.match(missing.stderr, /--target-db/);
    const badTime = await runCli('pms-backup', ['restore', '--pitr', '--target-time', 'yesterday', '--pgdata', '/nonexistent/pitr'], {});
    assert.equal(badTime.code, 64);
    assert.match(badTime.stderr, /--target-time "yesterday" is not a timestamp with a time zone/);
    const mixed = await runCli(
      'pms-backup',
      ['restore', 'latest', '--pitr', '--target-db', 'x', '--target-time', 'latest', '--pgdata', '/tmp/x'],
      {},
    );
    assert.equal(mixed.code, 64);
    assert.match(mixed.stderr, /--pitr takes --target-time, --pgdata and optionally --base/);
    const walFetch = await runCli('pms-backup', ['wal-fetch', 'only-one-argument'], {});
    assert.equal(walFetch.code, 200);
  });

  test('--json errors are JSON on stdout with the stable code', async () => {
    const result = await runCli('pms-backup', ['list', '--json'], {});
    assert.equal(result.code, 2);
    const body = JSON.parse(result.stdout) as { ok: boolean; error: { code: string; message: string } };
    assert.equal(body.ok, false);
    assert.equal(body.error.code, 'PMS_ERR_CONFIG');
  });
});
