import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SANDBOX_OS_USER } from '../../postgres/sandbox.js';
import { type ThrowawayCluster, startThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { type ArchiveFixture, PG_UID, createArchiveFixture } from '../../testing/archive-fixture.js';
import { type CliResult, binPath, osUserIds, runCli } from '../../testing/run-cli.js';
import { archiveCommand } from '../restore/pitr/recovery-settings.js';

/**
 * The verify pod's shape (docs/architecture.md, "Verify's sandbox"), on one host: verify runs as
 * an unprivileged user that holds the key (here `postgres`, standing for uid 10001), and
 * `pms-backup verify-server` runs the throwaway server as another unprivileged user with no
 * secret (`pms-sandbox`, standing for the sidecar's uid 10002); they share only a socket
 * directory. A backup whose index expression tries to read the key, the passphrase and the
 * environment gets nothing, and verify refuses a server that runs as its own uid, that can read
 * a secret file, or whose environment holds a secret.
 */
const PASSPHRASE = `vserver-passphrase-${randomBytes(6).toString('hex')}`;
const AWS_SECRET = `aws-secret-${randomBytes(6).toString('hex')}`;

let fixture: ArchiveFixture;
let source: ThrowawayCluster;
let findings: string;
let socketDir: string;
let server: ChildProcess;
let sandboxUid: number;
let env: Record<string, string>;

/** Runs pms-backup as another OS user, with only the given environment (and PATH). */
function cliAs(user: string, args: string[], extra: Record<string, string>): Promise<CliResult> {
  return runCli('pms-backup', args, extra, { asUser: user });
}

/** Starts verify-server as `user` in `dir`; resolves with the process once it printed its ready line. */
async function startServer(user: string, dir: string, extra: Record<string, string> = {}): Promise<{ child: ChildProcess; ready: string }> {
  const { uid, gid } = osUserIds(user);
  const child = spawn(
    process.execPath,
    [binPath('pms-backup'), 'verify-server', '--socket-dir', dir, '--client-user', 'postgres', '--json'],
    {
      env: { PATH: process.env['PATH'], ...extra },
      uid,
      gid,
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const ready = await new Promise<string>((resolve, reject) => {
    child.stdout?.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      if (stdout.includes('\n')) resolve(stdout.split('\n')[0] as string);
    });
    child.once('exit', (code) => reject(new Error(`verify-server exited ${code}: ${stderr}`)));
  });
  return { child, ready };
}

function stopServer(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

function lit(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

function hostileSql(): string {
  const keyFile = fixture.env['BACKUP_GPG_PRIVATE_KEY_FILE']!;
  const passFile = fixture.env['BACKUP_GPG_PASSPHRASE_FILE']!;
  const save = (what: string, expression: string) => `BEGIN
      EXECUTE pg_catalog.format('COPY (SELECT %L) TO %L', ${expression}, ${lit(findings)} || '/${what}.txt');
    EXCEPTION WHEN OTHERS THEN NULL;
    END;`;
  const tryRead = (what: string, path: string) => `BEGIN
      got := pg_catalog.pg_read_file(${lit(path)});
    EXCEPTION WHEN OTHERS THEN got := 'denied: ' || SQLERRM;
    END;
    ${save(what, 'got')}`;
  const sh = (command: string) => `BEGIN
      EXECUTE pg_catalog.format('COPY (SELECT 1) TO PROGRAM %L', ${lit(command)});
    EXCEPTION WHEN OTHERS THEN NULL;
    END;`;
  return `
CREATE TABLE public.reading (id int PRIMARY KEY, value int NOT NULL);
INSERT INTO public.reading SELECT g, g FROM pg_catalog.generate_series(1, 40) g;
CREATE FUNCTION public.attack(value int) RETURNS int LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE got text;
BEGIN
  IF value <> 1 OR pg_catalog.current_setting('data_directory') = ${lit(source.dataDir)} THEN RETURN value; END IF;
  ${sh(`id > ${findings}/id.txt`)}
  ${tryRead('key', keyFile)}
  ${tryRead('passphrase', passFile)}
  ${sh(`cat ${keyFile} ${passFile} > ${findings}/copied-key.txt 2>&1`)}
  ${sh(`env > ${findings}/env.txt`)}
  ${sh(`for f in /proc/[0-9]*/environ; do cat "$f"; echo; done > ${findings}/environs.txt 2>/dev/null; true`)}
  RETURN value;
END
$fn$;
CREATE FUNCTION public.hostile(value int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN RETURN public.attack(value); END
$fn$;
CREATE INDEX reading_hostile ON public.reading (public.hostile(value));
`;
}

function finding(what: string): string {
  const file = join(findings, `${what}.txt`);
  return existsSync(file) ? readFileSync(file, 'utf8') : '(nothing)';
}

function verificationRecords(): string[] {
  return readdirSync(fixture.repoRoot, { recursive: true })
    .map(String)
    .filter((f) => f.includes('verification-'));
}

before(async () => {
  assert.equal(process.getuid?.(), 0, 'needs root to run the two users');
  sandboxUid = osUserIds(SANDBOX_OS_USER).uid;
  fixture = await createArchiveFixture('vserver', { passphrase: PASSPHRASE });
  findings = mkdtempSync(join(tmpdir(), 'pms-vserver-findings-'));
  chmodSync(findings, 0o777);
  // The emptyDir both containers mount: created by the kubelet, world-writable.
  socketDir = mkdtempSync(join(tmpdir(), 'pms-vserver-socket-'));
  chmodSync(socketDir, 0o777);
  const logDir = join(fixture.work, 'logs');
  mkdirSync(logDir, { recursive: true });
  source = await startThrowawayCluster({
    settings: { archive_mode: 'on', wal_level: 'replica', archive_command: archiveCommand() },
    serverEnv: fixture.env,
  });
  await source.psql('CREATE DATABASE clinic');
  await source.psql(hostileSql(), 'clinic');
  env = { ...fixture.env, ...source.postgresEnv, POSTGRES_DB: 'clinic' };
  const created = await runCli('pms-backup', ['create', '--json'], env);
  assert.equal(created.code, 0, created.stderr);
  // verify's user (uid 10001 in the pod) owns the repository, its logs and its keys.
  for (const path of [
    fixture.repoRoot,
    logDir,
    ...readdirSync(fixture.repoRoot, { recursive: true }).map((p) => join(fixture.repoRoot, String(p))),
  ])
    chownSync(path, PG_UID, -1);
  for (const [name, value] of Object.entries(fixture.env)) if (name.endsWith('_FILE')) chownSync(value, PG_UID, -1);
  ({ child: server } = await startServer(SANDBOX_OS_USER, socketDir));
});

after(async () => {
  if (server) await stopServer(server);
  await source?.destroy();
  fixture?.remove();
  for (const dir of [findings, socketDir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

const verifyEnv = (extra: Record<string, string> = {}) => ({
  ...fixture.env,
  BACKUP_VERIFY_SERVER_SOCKET_DIR: socketDir,
  AWS_SECRET_ACCESS_KEY: AWS_SECRET,
  AWS_ACCESS_KEY_ID: 'AKIAPMSVSERVERTEST',
  ...extra,
});

describe('verify attached to verify-server (the verify pod: two uids, one socket directory)', () => {
  test('a hostile backup restored into verify-server reads no key, passphrase or credential, and verify reports', {
    timeout: 240_000,
  }, async () => {
    const result = await cliAs('postgres', ['verify', 'latest', '--json'], verifyEnv());
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    const report = JSON.parse(result.stdout) as { ok: boolean; checks: Array<{ name: string; ok: boolean; detail: string }> };
    assert.equal(report.ok, true);
    assert.match(
      report.checks.find((c) => c.name === 'sandbox')?.detail ?? '',
      new RegExp(
        `^PostgreSQL 15 ran in verify-server as uid ${sandboxUid}, apart from pms-backup \\(uid ${PG_UID}\\).*none of the [1-9]\\d* secret file\\(s\\) readable by it, no secret in its environment`,
      ),
    );
    assert.ok(report.checks.some((c) => c.name === 'row-counts' && c.ok));
    assert.doesNotMatch(result.stderr, /warning: the throwaway PostgreSQL runs as pms-backup's own OS user/);
    assert.match(finding('id'), new RegExp(`^uid=${sandboxUid}\\(${SANDBOX_OS_USER}\\)`), 'the restored code ran as the sidecar user');
    assert.match(finding('key'), /^denied: could not open file .*Permission denied/);
    assert.match(finding('passphrase'), /^denied: could not open file .*Permission denied/);
    assert.match(finding('copied-key'), /Permission denied/);
    const everything = ['env', 'environs', 'copied-key'].map(finding).join('\n');
    for (const secret of [PASSPHRASE, AWS_SECRET, 'PGP PRIVATE KEY', 'BACKUP_GPG', 'AWS_', 'BACKUP_REPOSITORY'])
      assert.ok(!everything.includes(secret), `${secret} is nowhere the restored code can see`);
    const left = execFileSync('runuser', [
      '-u',
      SANDBOX_OS_USER,
      '--',
      'psql',
      '-X',
      '-Atc',
      'SELECT datname FROM pg_database',
      `host=${socketDir} user=postgres dbname=postgres port=${readdirSync(socketDir)
        .find((n) => /^\.s\.PGSQL\.\d+$/.test(n))
        ?.slice(9)}`,
    ]).toString();
    assert.doesNotMatch(left, /pms_verify/, 'the restored database was dropped from verify-server');
  });

  test('verify-server refuses to start with a secret in its environment, naming the variable, never its value', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pms-vserver-refuse-'));
    chmodSync(dir, 0o777);
    try {
      const result = await cliAs(SANDBOX_OS_USER, ['verify-server', '--socket-dir', dir, '--client-user', 'postgres'], {
        AWS_SECRET_ACCESS_KEY: AWS_SECRET,
        BACKUP_GPG_PRIVATE_KEY_FILE: fixture.env['BACKUP_GPG_PRIVATE_KEY_FILE']!,
      });
      assert.equal(result.code, 2, result.stderr);
      assert.match(
        result.stderr,
        /PMS_ERR_CONFIG: verify-server refuses to start with secrets in its environment \(AWS_SECRET_ACCESS_KEY, BACKUP_GPG_PRIVATE_KEY_FILE\)/,
      );
      assert.ok(!result.stderr.includes(AWS_SECRET));
      assert.deepEqual(readdirSync(dir), [], 'no server was started');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('verify refuses a server that runs as its own uid (it could read the key), and records nothing', { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pms-vserver-same-'));
    chmodSync(dir, 0o777);
    const { child } = await startServer('postgres', dir);
    try {
      const before = verificationRecords();
      const result = await cliAs('postgres', ['verify', 'latest'], verifyEnv({ BACKUP_VERIFY_SERVER_SOCKET_DIR: dir }));
      assert.equal(result.code, 2, `${result.stdout}\n${result.stderr}`);
      assert.match(
        result.stderr,
        new RegExp(`PMS_ERR_CONFIG: the server at ${dir} runs as our own uid ${PG_UID}: restored code could read the key`),
      );
      assert.deepEqual(verificationRecords(), before);
    } finally {
      assert.equal(await stopServer(child), 0);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('verify refuses a server that can read a secret file (asked of the server itself), and records nothing', {
    timeout: 120_000,
  }, async () => {
    const exposedDir = mkdtempSync(join(tmpdir(), 'pms-vserver-exposed-'));
    chmodSync(exposedDir, 0o755);
    const exposed = join(exposedDir, 'private.asc');
    copyFileSync(fixture.env['BACKUP_GPG_PRIVATE_KEY_FILE']!, exposed);
    chmodSync(exposed, 0o644);
    try {
      const before = verificationRecords();
      const result = await cliAs('postgres', ['verify', 'latest'], verifyEnv({ BACKUP_GPG_PRIVATE_KEY_FILE: exposed }));
      assert.equal(result.code, 2, `${result.stdout}\n${result.stderr}`);
      assert.match(
        result.stderr,
        new RegExp(`PMS_ERR_CONFIG: refusing to restore into the server at ${socketDir}: it can read ${exposed}`),
      );
      assert.deepEqual(verificationRecords(), before);
    } finally {
      rmSync(exposedDir, { recursive: true, force: true });
    }
  });

  test("a base backup is not verified through verify-server (its recovery needs verify's own sandbox): clear error", {
    timeout: 240_000,
  }, async () => {
    const base = await runCli('pms-backup', ['base-backup', '--json'], env);
    assert.equal(base.code, 0, base.stderr);
    const id = (JSON.parse(base.stdout) as { id: string }).id;
    for (const path of readdirSync(fixture.repoRoot, { recursive: true }).map((p) => join(fixture.repoRoot, String(p))))
      chownSync(path, PG_UID, -1);
    const result = await cliAs('postgres', ['verify', id], verifyEnv());
    assert.equal(result.code, 2, `${result.stdout}\n${result.stderr}`);
    assert.match(
      result.stderr,
      new RegExp(
        `PMS_ERR_CONFIG: backup ${id} is a base backup: .*BACKUP_VERIFY_SERVER_SOCKET_DIR \\(verify-server\\) serves logical backups only`,
      ),
    );
  });

  test('SIGTERM stops verify-server with exit 0 and removes its socket and files', { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pms-vserver-stop-'));
    chmodSync(dir, 0o777);
    try {
      const { child, ready } = await startServer(SANDBOX_OS_USER, dir);
      const parsed = JSON.parse(ready) as { ready: boolean; socket: string; osUser: string };
      assert.equal(parsed.ready, true);
      assert.ok(existsSync(parsed.socket));
      assert.equal(await stopServer(child), 0);
      assert.deepEqual(readdirSync(dir), [], 'socket and lock file gone');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
