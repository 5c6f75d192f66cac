import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ThrowawayCluster, startThrowawayCluster } from '../postgres/throwaway-cluster.js';
import { type GpgKeyPair, generateGpgKeyPair, signingEnv } from '../testing/gpg-keys.js';
import { type ProcessSample, type SampledRun, runCliSampled } from '../testing/process-sampler.js';
import { runCli } from '../testing/run-cli.js';

// A password libpq's passfile must escape (':' and '\'), and secrets given directly in the
// parent's environment, as a careless operator might.
const PASSWORD = 'pa:ss\\wo\\:rd:';
const SECRETS = {
  POSTGRES_PASSWORD: PASSWORD,
  AWS_ACCESS_KEY_ID: 'AKIAPRIMARYMARKER1',
  AWS_SECRET_ACCESS_KEY: 'primary-secret-marker-5d1e',
  BACKUP_DR_AWS_ACCESS_KEY_ID: 'AKIADRMARKER2',
  BACKUP_DR_AWS_SECRET_ACCESS_KEY: 'dr-secret-marker-8b2a',
};

let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let work: string;
let tmp: string;
let env: Record<string, string>;

before(async () => {
  [cluster, key] = await Promise.all([startThrowawayCluster(), generateGpgKeyPair({ name: 'PMS Child Env Test' })]);
  await cluster.psql('CREATE DATABASE patient_telemetry');
  // Enough rows that pg_dump, zstd, pg_restore and psql each run long enough to be looked at.
  await cluster.psql(
    'CREATE TABLE reading AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS note FROM generate_series(1, 400000) g; ALTER TABLE reading ADD PRIMARY KEY (id)',
    'patient_telemetry',
  );
  const quoted = PASSWORD.replace(/'/g, "''");
  await cluster.psql(`CREATE ROLE pw_user SUPERUSER LOGIN PASSWORD '${quoted}'`);
  // Only this role must prove its password (scram) over TCP; the rest of the cluster stays trust.
  const hba = join(cluster.dataDir, 'pg_hba.conf');
  writeFileSync(hba, `hostssl all pw_user 127.0.0.1/32 scram-sha-256\n${readFileSync(hba, 'utf8')}`);
  await cluster.psql('SELECT pg_reload_conf()');
  work = mkdtempSync(join(tmpdir(), 'pms-childenv-'));
  tmp = join(work, 'tmp');
  mkdirSync(tmp);
  chmodSync(work, 0o755);
  chmodSync(tmp, 0o1777);
  mkdirSync(join(work, 'repo'));
  env = {
    ...cluster.postgresEnv,
    POSTGRES_USER: 'pw_user',
    POSTGRES_DB: 'patient_telemetry',
    BACKUP_REPOSITORY: `file://${join(work, 'repo')}`,
    BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
    BACKUP_GPG_KEY_ID: key.fingerprint,
    BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile,
    ...signingEnv(key),
    BACKUP_LOG_DIR: join(work, 'logs'),
    // The passfiles' directories are made here, so what is left behind is this test's to see.
    TMPDIR: tmp,
    AWS_REGION: 'eu-west-2',
    ...SECRETS,
  };
});

after(async () => {
  await cluster?.destroy();
  key?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

const leftovers = () => readdirSync(tmp).filter((name) => name.startsWith('pms-pgpass-'));

/** Every secret value absent from every child's environment, and no PGPASSWORD at all. */
function assertNoSecrets(samples: readonly ProcessSample[]): void {
  for (const sample of samples) {
    const text = sample.environ.join('\n');
    for (const [name, value] of Object.entries(SECRETS)) {
      assert.ok(!text.includes(value), `${sample.comm} (pid ${sample.pid}) has the value of ${name} in its environment`);
      assert.ok(!sample.environ.some((entry) => entry.startsWith(`${name}=`)), `${sample.comm} has ${name}`);
    }
    assert.ok(!sample.environ.some((entry) => entry.startsWith('PGPASSWORD=')), `${sample.comm} has PGPASSWORD`);
  }
}

function programs(run: SampledRun): Set<string> {
  return new Set(run.samples.map((s) => s.comm));
}

/** The passfiles the children were given, each seen while it existed as 0600 in a 0700 directory. */
function assertPassfiles(run: SampledRun, program: string): string[] {
  const given = run.samples.filter((s) => s.comm === program && s.environ.some((e) => e.startsWith('PGPASSFILE=')));
  assert.ok(given.length > 0, `${program} got a PGPASSFILE`);
  const seen = given.flatMap((s) => (s.passfile ? [s.passfile] : []));
  assert.ok(seen.length > 0, `the passfile of ${program} was seen while it ran`);
  for (const passfile of seen) {
    assert.equal(passfile.fileMode, 0o600);
    assert.equal(passfile.dirMode, 0o700);
    assert.equal(existsSync(dirname(passfile.path)), false, `${passfile.path}'s directory is gone afterwards`);
  }
  return seen.map((p) => p.path);
}

describe('children get what they need and nothing else', () => {
  test('create: pg_dump and zstd see no secret of the parent and no PGPASSWORD; the password arrives by a passfile that is gone afterwards', async () => {
    const run = await runCliSampled('pms-backup', ['create', '--json'], env);
    assert.equal(run.code, 0, run.stderr);
    const seen = programs(run);
    assert.ok(seen.has('pg_dump') && seen.has('zstd'), `sampled ${[...seen].join(', ')}`);
    assertNoSecrets(run.samples);
    assertPassfiles(run, 'pg_dump');
    assert.deepEqual(leftovers(), []);
    for (const secret of Object.values(SECRETS)) {
      assert.ok(!run.stdout.includes(secret) && !run.stderr.includes(secret), 'no secret in the output');
    }
  });

  test('the escaped password really is what libpq used: a wrong one is refused by scram', async () => {
    const result = await runCli('pms-backup', ['create'], { ...env, POSTGRES_PASSWORD: 'pa:ss\\wo\\:rd' });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /rejected user pw_user|password authentication failed/);
    assert.deepEqual(leftovers(), []);
  });

  test('restore: pg_restore and psql see no secret and no PGPASSWORD; psql gets a passfile, pg_restore (which connects nowhere) none', async () => {
    const run = await runCliSampled('pms-backup', ['restore', 'latest', '--target-db', 'restored_by_pw_user'], env);
    assert.equal(run.code, 0, run.stderr);
    const seen = programs(run);
    assert.ok(seen.has('pg_restore') && seen.has('psql'), `sampled ${[...seen].join(', ')}`);
    assertNoSecrets(run.samples);
    assertPassfiles(run, 'psql');
    for (const sample of run.samples.filter((s) => s.comm === 'pg_restore')) {
      assert.ok(
        !sample.environ.some((e) => e.startsWith('PG')),
        `pg_restore got ${sample.environ.filter((e) => e.startsWith('PG')).join(' ')}`,
      );
    }
    assert.equal(await cluster.psql('SELECT count(*) FROM reading', 'restored_by_pw_user'), '400000');
    assert.deepEqual(leftovers(), []);
  });

  test('a create stopped by SIGTERM while pg_dump runs still removes the passfile', async () => {
    let signalled = false;
    const run = await runCliSampled('pms-backup', ['create'], env, (sample, cli) => {
      if (!signalled && sample.comm === 'pg_dump' && sample.passfile) {
        signalled = true;
        process.kill(cli, 'SIGTERM');
      }
    });
    assert.ok(signalled, 'pg_dump was caught running with its passfile');
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /PMS_ERR_ABORTED/);
    assertPassfiles(run, 'pg_dump');
    assert.deepEqual(leftovers(), []);
  });
});
