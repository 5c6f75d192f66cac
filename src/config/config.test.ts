import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { after, describe, test } from 'node:test';
import { isPmsError } from '../errors/catalogue.js';
import { runCli } from '../testing/run-cli.js';
import { loadBackupConfig } from './config.js';

const dir = mkdtempSync(join(tmpdir(), 'pms-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const good = {
  BACKUP_REPOSITORY: 'file:///var/backups/pms',
  BACKUP_GPG_PUBLIC_KEY_FILE: '/k/pub.asc',
  BACKUP_GPG_KEY_ID: 'ABCDEF0123456789',
};

function problemsOf(env: Record<string, string>, needs = { repository: true, encryption: true }): string[] {
  try {
    loadBackupConfig(env, needs);
  } catch (error) {
    if (!isPmsError(error, 'PMS_ERR_CONFIG')) assert.fail(`expected PMS_ERR_CONFIG, got ${String(error)}`);
    assert.equal(error.exitCode, 2);
    return (error.details?.['problems'] as string[]) ?? [];
  }
  return [];
}

describe('configuration', () => {
  test('defaults follow the seed: localhost:5432/patient_telemetry, 30 days; sslmode verify-full', () => {
    const config = loadBackupConfig(good, { repository: true });
    assert.equal(config.postgres.host, 'localhost');
    assert.equal(config.postgres.port, 5432);
    assert.equal(config.postgres.database, 'patient_telemetry');
    assert.equal(config.postgres.sslmode, 'verify-full');
    assert.equal(config.retentionDays, 30);
    assert.deepEqual(config.repository, { kind: 'file', url: 'file:///var/backups/pms', root: '/var/backups/pms' });
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.postgres), 'config is frozen after parsing');
  });

  test('the default verify-full needs POSTGRES_SSLROOTCERT for a command that connects, not for one that does not nor over a Unix socket', () => {
    const needs = { repository: true, encryption: true, postgres: true } as const;
    const problems = problemsOf(good, needs);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0] ?? '', /^POSTGRES_SSLMODE=verify-full needs POSTGRES_SSLROOTCERT: set it to the CA certificate file/);
    assert.deepEqual(problemsOf(good, { repository: true, encryption: true }), []);
    assert.deepEqual(problemsOf({ ...good, POSTGRES_HOST: '/run/postgresql' }, needs), []);
    assert.deepEqual(problemsOf({ ...good, POSTGRES_SSLROOTCERT: '/etc/ssl/pg-ca.crt' }, needs), []);
    // A weaker mode is accepted only when named (and then doctor and the log call it insecure).
    assert.deepEqual(problemsOf({ ...good, POSTGRES_SSLMODE: 'prefer' }, needs), []);
  });

  test('BACKUP_REPOSITORY defaults to s3://$S3_BUCKET and parses bucket and prefix', () => {
    const fromBucket = loadBackupConfig({ S3_BUCKET: 'pms-production-backups', AWS_REGION: 'eu-west-2' }, { repository: true });
    assert.equal(fromBucket.repository?.kind, 's3');
    assert.equal(fromBucket.repository?.kind === 's3' && fromBucket.repository.s3.bucket, 'pms-production-backups');
    const withPrefix = loadBackupConfig(
      {
        BACKUP_REPOSITORY: 's3://bucket-a/nightly/db1/',
        AWS_REGION: 'eu-west-2',
        S3_ENDPOINT: 'http://127.0.0.1:9000',
        S3_FORCE_PATH_STYLE: 'true',
      },
      { repository: true },
    );
    if (withPrefix.repository?.kind !== 's3') assert.fail('expected an s3 repository');
    assert.equal(withPrefix.repository.s3.prefix, 'nightly/db1');
    assert.equal(withPrefix.repository.s3.forcePathStyle, true);
    assert.equal(withPrefix.repository.s3.endpoint, 'http://127.0.0.1:9000');
  });

  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['POSTGRES_PORT not a number', { POSTGRES_PORT: 'five' }, /POSTGRES_PORT="five" is invalid/],
    ['POSTGRES_PORT out of range', { POSTGRES_PORT: '70000' }, /POSTGRES_PORT="70000" is invalid/],
    ['POSTGRES_SSLMODE unknown', { POSTGRES_SSLMODE: 'sometimes' }, /POSTGRES_SSLMODE="sometimes" is invalid: use one of/],
    ['verify-full without a CA', { POSTGRES_SSLMODE: 'verify-full' }, /verify-full needs POSTGRES_SSLROOTCERT/],
    ['relative file repository', { BACKUP_REPOSITORY: 'file://backups' }, /BACKUP_REPOSITORY="file:\/\/backups" is invalid/],
    ['unknown repository scheme', { BACKUP_REPOSITORY: 'ftp://host/x' }, /BACKUP_REPOSITORY="ftp:\/\/host\/x" is invalid/],
    ['s3 without a region', { BACKUP_REPOSITORY: 's3://bucket-a' }, /AWS_REGION is not set/],
    [
      'access key without secret',
      { BACKUP_REPOSITORY: 's3://bucket-a', AWS_REGION: 'eu-west-2', AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE' },
      /must be set together/,
    ],
    ['S3_ENDPOINT not a URL', { S3_ENDPOINT: 'minio:9000' }, /S3_ENDPOINT="minio:9000" is invalid/],
    ['S3_FORCE_PATH_STYLE not a boolean', { S3_FORCE_PATH_STYLE: 'maybe' }, /S3_FORCE_PATH_STYLE="maybe" is invalid/],
    ['BACKUP_RETENTION_DAYS negative', { BACKUP_RETENTION_DAYS: '-1' }, /BACKUP_RETENTION_DAYS="-1" is invalid/],
    ['BACKUP_GPG_KEY_ID not hex', { BACKUP_GPG_KEY_ID: 'backup@pms.example.com' }, /BACKUP_GPG_KEY_ID is invalid/],
    ['no public key file for create', { BACKUP_GPG_PUBLIC_KEY_FILE: '' }, /BACKUP_GPG_PUBLIC_KEY_FILE is not set/],
    [
      'NAME and NAME_FILE both set',
      { POSTGRES_PASSWORD: 'x', POSTGRES_PASSWORD_FILE: '/run/secrets/pw' },
      /POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are both set/,
    ],
    [
      'NAME_FILE unreadable',
      { AWS_SECRET_ACCESS_KEY_FILE: '/nonexistent/secret' },
      /AWS_SECRET_ACCESS_KEY_FILE: cannot read \/nonexistent\/secret \(ENOENT\)/,
    ],
  ];
  for (const [name, env, expected] of cases) {
    test(`rejects ${name}`, () => {
      const problems = problemsOf({ ...good, ...env });
      assert.ok(
        problems.some((p) => expected.test(p)),
        `expected ${expected} in ${JSON.stringify(problems)}`,
      );
    });
  }

  test('BACKUP_BASE_ZSTD_WORKERS defaults to 2, accepts 0 to 64 and names the problem otherwise', () => {
    assert.equal(loadBackupConfig(good, { repository: true }).operations.baseBackupZstdWorkers, 2);
    assert.equal(loadBackupConfig({ ...good, BACKUP_BASE_ZSTD_WORKERS: '0' }, { repository: true }).operations.baseBackupZstdWorkers, 0);
    for (const bad of ['-1', '2.5', '65', 'many']) {
      const problems = problemsOf({ ...good, BACKUP_BASE_ZSTD_WORKERS: bad });
      assert.ok(
        problems.some((p) => p.startsWith('BACKUP_BASE_ZSTD_WORKERS') && /0 to 64/.test(p)),
        `${bad}: ${problems.join('; ')}`,
      );
    }
  });

  test('no repository at all is a problem only for commands that need one', () => {
    assert.deepEqual(problemsOf({}, { repository: false, encryption: false }), []);
    assert.ok(problemsOf({}, { repository: true, encryption: false }).some((p) => /BACKUP_REPOSITORY is not set/.test(p)));
  });

  test('every problem is reported at once', () => {
    const problems = problemsOf({ ...good, POSTGRES_PORT: 'x', POSTGRES_SSLMODE: 'bogus', BACKUP_RETENTION_DAYS: 'week' });
    assert.equal(problems.length, 3);
  });

  test('secrets are read from NAME_FILE, trailing newline stripped, and never printed', () => {
    const file = join(dir, 'pw');
    writeFileSync(file, 'correct horse battery\n');
    const config = loadBackupConfig({
      ...good,
      POSTGRES_PASSWORD_FILE: file,
      AWS_ACCESS_KEY_ID: 'AKIA',
      AWS_SECRET_ACCESS_KEY: 'topsecret',
    });
    assert.equal(config.postgres.password?.reveal(), 'correct horse battery');
    const dumped = `${JSON.stringify(config)} ${String(config.postgres.password)} ${inspect(config, { depth: 9 })}`;
    assert.doesNotMatch(dumped, /correct horse|topsecret/);
  });

  test('the CLI exits 2 listing every problem without printing a secret value', async () => {
    const result = await runCli('pms-backup', ['create'], {
      POSTGRES_PORT: 'abc',
      POSTGRES_PASSWORD: 'hunter2-secret',
      BACKUP_REPOSITORY: 'nope://x',
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /PMS_ERR_CONFIG/);
    assert.match(result.stderr, /POSTGRES_PORT="abc"/);
    assert.match(result.stderr, /BACKUP_REPOSITORY="nope:\/\/x"/);
    assert.match(result.stderr, /BACKUP_GPG_PUBLIC_KEY_FILE is not set/);
    assert.doesNotMatch(result.stderr + result.stdout, /hunter2-secret/);
  });
});
