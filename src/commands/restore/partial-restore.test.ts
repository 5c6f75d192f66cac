import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startThrowawayCluster, type ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { type GpgKeyPair, generateGpgKeyPair, signingEnv } from '../../testing/gpg-keys.js';
import { runCli } from '../../testing/run-cli.js';

const PATIENT_A = '9434765919';
const PATIENT_B = '9434765927';

let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let env: Record<string, string>;
let backupId: string;

const readingsOf = (db: string, patient: string) =>
  cluster.psql(`SELECT count(*) FROM telemetry.reading WHERE patient_nhs_number = '${patient}'`, db);

before(async () => {
  [cluster, key] = await Promise.all([startThrowawayCluster(), generateGpgKeyPair({ name: 'PMS Partial Test' })]);
  await cluster.psql('CREATE DATABASE patient_telemetry');
  (await import('node:fs')).mkdirSync(join(key.dir, 'repo'));
  env = {
    ...cluster.postgresEnv,
    POSTGRES_DB: 'patient_telemetry',
    BACKUP_REPOSITORY: `file://${key.dir}/repo`,
    ...signingEnv(key),
    BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
    BACKUP_GPG_KEY_ID: key.fingerprint,
    BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile,
    BACKUP_LOG_DIR: `${key.dir}/logs`,
  };
  const migrated = await runCli('pms-telemetry', ['migrate'], env);
  assert.equal(migrated.code, 0, migrated.stderr);
  for (const [device, patient] of [
    ['watch-a1', PATIENT_A],
    ['ring-a2', PATIENT_A],
    ['watch-b1', PATIENT_B],
  ] as const) {
    const registered = await runCli('pms-telemetry', ['device', 'register', '--device-id', device, '--patient-id', patient, '--json'], env);
    assert.equal(registered.code, 0, registered.stderr);
  }
  await cluster.psql(
    `INSERT INTO telemetry.reading (patient_nhs_number, device_id, reading_id, code, value, unit, measured_at, measured_at_offset_minutes)
     SELECT CASE WHEN g % 3 = 0 THEN '${PATIENT_B}' ELSE '${PATIENT_A}' END,
            CASE WHEN g % 3 = 0 THEN 'watch-b1' WHEN g % 3 = 1 THEN 'watch-a1' ELSE 'ring-a2' END,
            'r-' || g, '8867-4', 60 + g % 40, '/min', now() - g * interval '10 seconds', 60
     FROM generate_series(1, 3000) g`,
    'patient_telemetry',
  );
  const created = await runCli('pms-backup', ['create', '--json'], env);
  assert.equal(created.code, 0, created.stderr);
  backupId = (JSON.parse(created.stdout) as { id: string }).id;
});

after(async () => {
  await cluster?.destroy();
  key?.remove();
});

describe('partial restore', () => {
  test('--table restores only that table (with its partitions and indexes), with the manifest row count', async () => {
    const result = await runCli(
      'pms-backup',
      ['restore', backupId, '--target-db', 'only_readings', '--table', 'telemetry.reading', '--json'],
      env,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await cluster.psql('SELECT count(*) FROM telemetry.reading', 'only_readings'), '3000');
    const tables = await cluster.psql(
      "SELECT string_agg(DISTINCT c.relname, ',') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'telemetry' AND c.relkind IN ('r','p') AND c.relname NOT LIKE 'reading%'",
      'only_readings',
    );
    assert.equal(tables, '', 'no other telemetry tables were restored');
    assert.match(
      await cluster.psql("SELECT string_agg(indexname, ',') FROM pg_indexes WHERE tablename = 'reading'", 'only_readings'),
      /reading_patient_code_time/,
    );
  });

  test("--patient restores only that patient's readings and devices into a separate database", async () => {
    const result = await runCli('pms-backup', ['restore', backupId, '--target-db', 'patient_a', '--patient', PATIENT_A, '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await readingsOf('patient_a', PATIENT_A), await readingsOf('patient_telemetry', PATIENT_A));
    assert.equal(await readingsOf('patient_a', PATIENT_B), '0');
    assert.equal(
      await cluster.psql("SELECT string_agg(device_id, ',' ORDER BY device_id) FROM telemetry.device", 'patient_a'),
      'ring-a2,watch-a1',
    );
    assert.equal(
      await cluster.psql('SELECT count(*) FROM telemetry.reading', 'patient_telemetry'),
      '3000',
      'the live database is untouched',
    );
    const logs = readdirSync(join(key.dir, 'logs'))
      .map((f) => readFileSync(join(key.dir, 'logs', f), 'utf8'))
      .join('');
    assert.doesNotMatch(logs + result.stderr, new RegExp(PATIENT_A), 'the NHS number stays out of logs');
    const audit = await runCli('pms-backup', ['audit', '--json'], env);
    assert.doesNotMatch(audit.stdout, new RegExp(PATIENT_A), 'and out of the audit log');
  });

  test('bad partial-restore input gets a clear error and creates nothing', async () => {
    const badNhs = await runCli('pms-backup', ['restore', backupId, '--target-db', 'x1', '--patient', '1234567890'], env);
    assert.equal(badNhs.code, 64);
    assert.match(badNhs.stderr, /not a valid NHS number/);
    assert.doesNotMatch(badNhs.stderr, /1234567890/);
    const badTable = await runCli('pms-backup', ['restore', backupId, '--target-db', 'x2', '--table', 'reading'], env);
    assert.equal(badTable.code, 64);
    assert.match(badTable.stderr, /must be SCHEMA\.TABLE/);
    const unknown = await runCli('pms-backup', ['restore', backupId, '--target-db', 'x3', '--table', 'telemetry.nope'], env);
    assert.equal(unknown.code, 3);
    const both = await runCli(
      'pms-backup',
      ['restore', backupId, '--target-db', 'x4', '--table', 'telemetry.reading', '--patient', PATIENT_A],
      env,
    );
    assert.equal(both.code, 64);
    assert.equal(await cluster.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'x_%'"), '0');
  });
});
