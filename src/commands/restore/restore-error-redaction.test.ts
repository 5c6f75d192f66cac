import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ThrowawayCluster, startThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { type GpgKeyPair, generateGpgKeyPair, signingEnv } from '../../testing/gpg-keys.js';
import { runCli } from '../../testing/run-cli.js';

// A value of a row the restore fails on, as patient data would be.
const MARKER = 'PATIENT-ROW-MARKER-4c7e91';

let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let work: string;
let repo: string;
let logs: string;
let env: Record<string, string>;

/** Every file under `dir` whose bytes hold `text`. */
function filesHolding(dir: string, text: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile() && readFileSync(path).includes(text));
}

before(async () => {
  [cluster, key] = await Promise.all([startThrowawayCluster(), generateGpgKeyPair({ name: 'PMS Redaction Test' })]);
  await cluster.psql('CREATE DATABASE patient_telemetry');
  // The row passed its CHECK when written; by restore time the function it calls says no
  // ("banned" is restored first), so the restore fails on that row, with its values in
  // PostgreSQL's message: DETAIL "Failing row contains (…)", CONTEXT "COPY vitals, line 1: …".
  await cluster.psql(
    `CREATE TABLE banned (word text);
     CREATE FUNCTION allowed(text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT NOT EXISTS (SELECT 1 FROM public.banned WHERE word = $1) $$;
     CREATE TABLE vitals (id int PRIMARY KEY, note text CHECK (allowed(note)));
     INSERT INTO vitals VALUES (1, '${MARKER}');
     INSERT INTO banned VALUES ('${MARKER}');`,
    'patient_telemetry',
  );
  work = mkdtempSync(join(tmpdir(), 'pms-redact-'));
  chmodSync(work, 0o755);
  repo = join(work, 'repo');
  logs = join(work, 'logs');
  mkdirSync(repo);
  const tmp = join(work, 'tmp');
  mkdirSync(tmp);
  chmodSync(tmp, 0o1777);
  env = {
    ...cluster.postgresEnv,
    POSTGRES_DB: 'patient_telemetry',
    BACKUP_REPOSITORY: `file://${repo}`,
    BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
    BACKUP_GPG_KEY_ID: key.fingerprint,
    BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile,
    ...signingEnv(key),
    BACKUP_LOG_DIR: logs,
    TMPDIR: tmp,
  };
  const created = await runCli('pms-backup', ['create'], env);
  assert.equal(created.code, 0, created.stderr);
});

after(async () => {
  await cluster?.destroy();
  key?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('pg_restore errors keep only the SQLSTATE and the object', () => {
  test('control: PostgreSQL itself quotes the row in its message', async () => {
    await cluster.psql('CREATE DATABASE control');
    await cluster.psql('CREATE TABLE banned (word text); INSERT INTO banned VALUES ($$x$$)', 'control');
    await cluster.psql(
      'CREATE FUNCTION allowed(text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT NOT EXISTS (SELECT 1 FROM public.banned WHERE word = $1) $$; CREATE TABLE vitals (id int, note text CHECK (allowed(note)))',
      'control',
    );
    await assert.rejects(cluster.psql("INSERT INTO vitals VALUES (1, 'x')", 'control'), /Failing row contains \(1, x\)/);
  });

  test('restore: the error names SQLSTATE 23514 and TABLE DATA public.vitals; the row is in no output, log line or repository file', async () => {
    const result = await runCli('pms-backup', ['restore', 'latest', '--target-db', 'restored'], env);
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      /PMS_ERR_TOOL_FAILED: pg_restore: SQLSTATE 23514 in TABLE DATA public\.vitals \(line \d+ of the restore script;/,
    );
    assert.ok(!result.stderr.includes(MARKER) && !result.stdout.includes(MARKER), result.stderr);
    assert.deepEqual(filesHolding(logs, MARKER), []);
    assert.deepEqual(filesHolding(repo, MARKER), []);
    const failed = readdirSync(logs)
      .flatMap((file) => readFileSync(join(logs, file), 'utf8').split('\n'))
      .filter((line) => line.includes('"restore failed"'));
    assert.equal(failed.length, 1);
    assert.match(failed[0] ?? '', /SQLSTATE 23514 in TABLE DATA public\.vitals/);
    assert.equal(await cluster.psql("SELECT count(*) FROM pg_database WHERE datname LIKE '%restored%'", 'postgres'), '0');
  });

  test('verify: the stored verification record and the log say SQLSTATE 23514 in TABLE DATA public.vitals, never the row', async () => {
    const result = await runCli('pms-backup', ['verify', 'latest', '--json'], env);
    assert.equal(result.code, 1, result.stderr);
    assert.ok(!result.stderr.includes(MARKER) && !result.stdout.includes(MARKER), result.stdout);
    const records = readdirSync(repo, { recursive: true, encoding: 'utf8' }).filter((name) => /verification-[^/]*\.json$/.test(name));
    assert.equal(records.length, 1, readdirSync(repo, { recursive: true, encoding: 'utf8' }).join('\n'));
    const record = readFileSync(join(repo, records[0] ?? ''), 'utf8');
    assert.match(record, /pg_restore: SQLSTATE 23514 in TABLE DATA public\.vitals/);
    assert.deepEqual(filesHolding(repo, MARKER), []);
    assert.deepEqual(filesHolding(logs, MARKER), []);
  });
});
