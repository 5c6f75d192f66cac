import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { checkPointInTimeRecovery } from '../../commands/doctor/pitr-check.js';
import { loadBackupConfig } from '../../config/config.js';
import { findPgProgram } from '../../postgres/binaries.js';
import { runTool } from '../../process/tool-process.js';
import { runCli } from '../../testing/run-cli.js';
import { type ConfiguredPostgres, startConfiguredPostgres } from './configured-postgres.js';
import { type DatabaseLogin, type PsqlOptions, libpqEnvFor, loginOf, psqlAs } from './database-logins.js';
import type { Manifest } from './manifest.js';
import { DEPLOY_DIR, renderKustomization } from './render.js';
import { findPod, materialiseContainer } from './workload-environment.js';
import { shellFirstArchiveCommand } from '../../commands/wal-push/archive-command.js';

/**
 * Contract test: the postgresql.conf and pg_hba.conf from the rendered dev ConfigMap, mounted as
 * the StatefulSet mounts them and with container paths mapped to a temporary directory, start a
 * real PostgreSQL 15 that speaks TLS and refuses anything else; the init script creates the
 * logins from the dev Secrets and the rendered `pms-telemetry migrate` container builds the
 * schema. Each login, with the credentials its workload mounts, can then do its job and no more.
 */
let postgres: ConfiguredPostgres | undefined;
let objects: Manifest[];
let root: string;
const logins = {} as Record<'owner' | 'ingest' | 'backup' | 'exporter' | 'superuser' | 'stranger', DatabaseLogin>;
const NHS_NUMBER = '9434765919';

function sqlString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'pms-pgroles-'));
  const rendered = await renderKustomization(join(DEPLOY_DIR, 'overlays', 'dev'));
  // A login outside every pms_connect_* group, with a valid SCRAM password.
  logins.stranger = { user: 'stranger', password: 'stranger-password' };
  postgres = await startConfiguredPostgres(rendered, {
    runInitScripts: true,
    prepareSql: `SET password_encryption = 'scram-sha-256'; CREATE ROLE ${logins.stranger.user} LOGIN PASSWORD ${sqlString(logins.stranger.password)};`,
  });
  objects = [...rendered, postgres.tlsSecret];
  // The superuser's password, as the image's entrypoint sets it from POSTGRES_PASSWORD_FILE (over the socket).
  logins.superuser = loginOf(
    objects,
    'StatefulSet/postgres',
    'postgres',
    { user: 'POSTGRES_USER', password: 'POSTGRES_PASSWORD_FILE' },
    root,
  );
  await socketPsql(
    `SET password_encryption = 'scram-sha-256'; ALTER ROLE ${logins.superuser.user} PASSWORD ${sqlString(logins.superuser.password)};`,
  );
  const file = { user: 'POSTGRES_USER_FILE', password: 'POSTGRES_PASSWORD_FILE' };
  logins.owner = loginOf(objects, 'Deployment/pms-telemetry', 'migrate', file, root);
  logins.ingest = loginOf(objects, 'Deployment/pms-telemetry', 'api', file, root);
  logins.backup = loginOf(objects, 'CronJob/pms-backup', 'pms-backup', file, root);
  logins.exporter = loginOf(
    objects,
    'StatefulSet/postgres',
    'exporter',
    { user: 'DATA_SOURCE_USER_FILE', password: 'DATA_SOURCE_PASS_FILE' },
    root,
  );
  assert.equal(new Set(Object.values(logins).map((l) => l.user)).size, 6, 'every workload has a login of its own');

  // The rendered migrate init container builds the schema, as the schema owner.
  const migrate = materialiseContainer(objects, findPod(objects, 'Deployment/pms-telemetry'), 'migrate', {
    root: join(root, 'migrate'),
    envOverrides: { POSTGRES_HOST: 'localhost', POSTGRES_PORT: String(postgres.cluster.port) },
  });
  const [, ...args] = migrate.command;
  const result = await runCli('pms-telemetry', args, migrate.env);
  assert.equal(result.code, 0, `migrate: ${result.stderr}`);
});

after(async () => {
  await postgres?.destroy();
  rmSync(root, { recursive: true, force: true });
});

/**
 * psql as the superuser over the Unix socket, as `kubectl exec` would: our pg_hba.conf admits it
 * there by peer authentication only, so psql runs as the server's OS user.
 */
async function socketPsql(sql: string, database = 'patient_telemetry'): Promise<string> {
  assert.ok(postgres);
  const c = postgres.cluster;
  const { stdout } = await runTool(findPgProgram('psql'), ['-X', '-qAt', '-v', 'ON_ERROR_STOP=1', '-d', database, '-c', sql], {
    env: c.libpqEnv,
    runAs: c.osUser,
  });
  return stdout;
}

function as(login: DatabaseLogin, sql: string, options: PsqlOptions = {}): Promise<string> {
  assert.ok(postgres);
  return psqlAs({ port: postgres.cluster.port, caFile: postgres.caFile }, login, sql, options);
}

/** The statement fails with one of these SQLSTATEs (psql prints it in verbose mode). */
async function refused(login: DatabaseLogin, sql: string, codes: readonly string[], options: PsqlOptions = {}): Promise<void> {
  await assert.rejects(as(login, sql, options), (error: Error) => {
    assert.match(error.message, new RegExp(`ERROR: {2}(${codes.join('|')}):`), `${login.user}: ${sql}`);
    return true;
  });
}

/** pg_hba.conf turns the connection away before any password is checked. */
async function rejectedByHba(login: DatabaseLogin, options: PsqlOptions = {}): Promise<void> {
  await assert.rejects(as(login, 'SELECT 1', options), /pg_hba\.conf rejects (replication )?connection/);
}

const INSERT_READING = `INSERT INTO telemetry.reading (patient_nhs_number, device_id, reading_id, code, value, unit, measured_at, measured_at_offset_minutes)
  VALUES ('${NHS_NUMBER}', 'contract-device', 'r-1', '8867-4', 72, '/min', now(), 0)`;

describe('PostgreSQL configuration from the ConfigMap', () => {
  test('a verify-full TLS connection with a SCRAM password succeeds and is encrypted', async () => {
    assert.equal(await as(logins.ingest, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'), 't');
  });

  test('a connection without TLS is refused by pg_hba.conf, for every login', async () => {
    for (const login of [logins.owner, logins.ingest, logins.backup, logins.exporter])
      await assert.rejects(as(login, 'SELECT 1', { sslmode: 'disable' }), /no encryption/);
  });

  test('a replication connection without TLS is refused, and with TLS it is accepted for the backup login', async () => {
    await assert.rejects(as(logins.backup, 'IDENTIFY_SYSTEM', { sslmode: 'disable', replication: true }), /no encryption/);
    assert.match(await as(logins.backup, 'IDENTIFY_SYSTEM', { replication: true }), /^\d+\|/);
  });

  test('a wrong password over TLS is refused (SCRAM, never trust)', async () => {
    await assert.rejects(as({ ...logins.ingest, password: 'wrong-password' }, 'SELECT 1'), /password authentication failed/);
  });

  test('the telemetry tuning and archiving settings are in effect', async () => {
    // As the exporter: pg_monitor includes pg_read_all_settings.
    const show = async (name: string): Promise<string> => as(logins.exporter, `SHOW ${name}`);
    assert.equal(await show('ssl'), 'on');
    assert.equal(await show('ssl_min_protocol_version'), 'TLSv1.2');
    assert.equal(await show('password_encryption'), 'scram-sha-256');
    assert.equal(await show('wal_compression'), 'zstd');
    assert.equal(await show('max_wal_size'), '4GB');
    assert.equal(await show('archive_mode'), 'on');
    assert.equal(await show('archive_command'), shellFirstArchiveCommand('pms-backup wal-push'));
    assert.equal(await show('archive_timeout'), '5min');
    assert.equal(await show('autovacuum_vacuum_insert_scale_factor'), '0.05');
    assert.equal(await show('shared_preload_libraries'), 'pg_stat_statements');
  });
});

describe('pg_hba.conf admits each login for its job only', () => {
  test('the superuser is refused over TCP with its correct password, with or without TLS, replication too', async () => {
    await rejectedByHba(logins.superuser);
    await rejectedByHba(logins.superuser, { database: 'postgres' });
    await rejectedByHba(logins.superuser, { replication: true });
    await rejectedByHba(logins.superuser, { sslmode: 'disable' });
  });

  test('a login in no pms_connect_* group is refused over TLS with its correct password', async () => {
    await rejectedByHba(logins.stranger);
    await rejectedByHba(logins.stranger, { replication: true });
  });

  test('only the backup login may open a replication connection', async () => {
    for (const login of [logins.owner, logins.ingest, logins.exporter]) await rejectedByHba(login, { replication: true });
  });

  test('no login reaches another database than patient_telemetry', async () => {
    for (const login of [logins.owner, logins.ingest, logins.backup, logins.exporter])
      for (const database of ['postgres', 'template1']) await rejectedByHba(login, { database });
  });

  test('as the server parsed it: TCP rules other than reject are hostssl with scram-sha-256, replication is the backup group only, the exporter loopback only', async () => {
    // The throwaway server listens on 127.0.0.1 only, so the exporter's address limit is read
    // from the server's own parse of the file (pg_hba_file_rules) rather than tried.
    const rules = (
      await socketPsql(
        `SELECT type, array_to_string(database, ','), array_to_string(user_name, ','), coalesce(address, ''), coalesce(netmask, ''), auth_method, coalesce(error, '')
           FROM pg_hba_file_rules ORDER BY line_number`,
      )
    )
      .trim()
      .split('\n')
      .map((line) => line.split('|'));
    assert.deepEqual(
      rules.filter((r) => r[6] !== ''),
      [],
      'every line parses',
    );
    const admitting = rules.filter((r) => r[5] !== 'reject');
    assert.deepEqual(
      admitting.filter((r) => r[0] !== 'local').map((r) => `${r[0]} ${r[5]}`),
      admitting.filter((r) => r[0] !== 'local').map(() => 'hostssl scram-sha-256'),
    );
    assert.deepEqual(
      admitting.filter((r) => r[0] === 'local').map((r) => `${r[1]} ${r[2]} ${r[5]}`),
      ['all all peer'],
    );
    assert.deepEqual([...new Set(admitting.filter((r) => r[1] === 'replication').map((r) => r[2]))], ['+pms_connect_backup']);
    assert.deepEqual(
      admitting.filter((r) => r[2] === '+pms_connect_exporter').map((r) => `${r[3]}/${r[4]}`),
      ['127.0.0.1/255.255.255.255', '::1/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    );
    // The last lines reject whatever came this far.
    assert.deepEqual(
      rules.slice(-4).map((r) => `${r[0]} ${r[1]} ${r[2]} ${r[5]}`),
      ['host all all reject', 'host all all reject', 'host replication all reject', 'host replication all reject'],
    );
    assert.equal(await as(logins.exporter, 'SELECT 1'), '1');
  });
});

describe("pms_restore: off as shipped, a full restore's login once an operator enables it (docs/runbook.md)", () => {
  test("it cannot log in until enabled; then it reaches postgres over TLS, creates a database, owns the schema owner's objects, and never replicates", async () => {
    const restore = { user: 'pms_restore', password: 'restore-password' };
    await assert.rejects(as(restore, 'SELECT 1', { database: 'postgres' }), /not permitted to log in|password authentication failed/);
    await socketPsql(`SET password_encryption = 'scram-sha-256'; ALTER ROLE pms_restore LOGIN PASSWORD ${sqlString(restore.password)};`);
    try {
      await as(restore, 'CREATE DATABASE restore_contract TEMPLATE template0', { database: 'postgres' });
      assert.equal(await as(restore, 'SELECT current_user', { database: 'restore_contract' }), 'pms_restore');
      // What pg_restore does with the dump's ownership (the schema, then each object, given to the
      // schema owner): allowed only to a member of that login.
      await as(
        restore,
        `CREATE SCHEMA telemetry; ALTER SCHEMA telemetry OWNER TO "${logins.owner.user}"; CREATE TABLE telemetry.t (i int); ALTER TABLE telemetry.t OWNER TO "${logins.owner.user}"`,
        { database: 'restore_contract' },
      );
      await rejectedByHba(restore, { replication: true });
      assert.equal(
        await as(restore, 'SELECT rolsuper OR rolcreaterole OR rolreplication FROM pg_roles WHERE rolname = current_user', {
          database: 'postgres',
        }),
        'f',
      );
    } finally {
      await socketPsql('ALTER ROLE pms_restore NOLOGIN PASSWORD NULL', 'postgres');
      // Not in one string with the ALTER: DROP DATABASE cannot run inside a transaction.
      await socketPsql('DROP DATABASE IF EXISTS restore_contract WITH (FORCE)', 'postgres');
    }
  });
});

describe('each login has exactly the privileges of its job', () => {
  test('ingest: stores readings and reads them back, creates its partition through the definer function', async () => {
    await as(logins.ingest, `SELECT telemetry.ensure_reading_partition(current_date); ${INSERT_READING}`);
    assert.equal(await as(logins.ingest, `SELECT count(*) FROM telemetry.reading WHERE patient_nhs_number = '${NHS_NUMBER}'`), '1');
    await as(
      logins.ingest,
      "INSERT INTO telemetry.quarantined_reading (device_id, patient_nhs_number, reason, detail, source, payload) VALUES ('d', 'x', 'r', 'd', 'v1', '{}')",
    );
  });

  test('ingest: reads no column it does not need and writes nothing outside its tables', async () => {
    for (const sql of [
      'SELECT * FROM telemetry.device',
      'SELECT registered_at FROM telemetry.device',
      'SELECT * FROM telemetry.reader',
      'SELECT * FROM telemetry.quarantined_reading',
      'SELECT * FROM telemetry.retention_log',
      'SELECT * FROM telemetry.reader_access',
      'UPDATE telemetry.reader_access SET rows_returned = 0',
      'DELETE FROM telemetry.reader_access',
      "INSERT INTO telemetry.reader_patient (reader_id, patient_nhs_number) VALUES (1, '9434765919')",
      "INSERT INTO telemetry.device (device_id, patient_nhs_number, token_hash) VALUES ('x', '9434765919', '\\x00')",
      'UPDATE telemetry.device SET revoked_at = now()',
      "INSERT INTO telemetry.reader (name, token_hash) VALUES ('x', '\\x00')",
      'UPDATE telemetry.reading SET value = 0',
      'DELETE FROM telemetry.reading',
      'TRUNCATE telemetry.reading',
      'UPDATE telemetry.quarantined_reading SET reason = NULL',
      'DELETE FROM telemetry.schema_migration',
      'CREATE TABLE telemetry.planted (x int)',
      'CREATE TABLE public.planted (x int)',
      'CREATE TEMPORARY TABLE planted (x int)',
      'SELECT * FROM pg_authid',
    ])
      await refused(logins.ingest, sql, ['42501']);
  });

  test('ingest: across every table, SELECT only on readings, keys, reader scopes and the schema version, and no UPDATE, DELETE or TRUNCATE anywhere', async () => {
    const granted = await as(
      logins.ingest,
      `SELECT n.nspname || '.' || c.relname || ':' || p.privilege
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        CROSS JOIN unnest(ARRAY['SELECT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p(privilege)
        WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND has_table_privilege(c.oid, p.privilege)
        ORDER BY 1`,
    );
    const partitions = /^telemetry\.reading_p\d{4}_\d{2}:SELECT$/;
    assert.deepEqual(
      granted.split('\n').filter((g) => !partitions.test(g)),
      ['telemetry.reader_patient:SELECT', 'telemetry.reading:SELECT', 'telemetry.reading_key:SELECT', 'telemetry.schema_migration:SELECT'],
    );
  });

  test('backup: pg_dump over verify-full TLS dumps the patient data', async () => {
    assert.ok(postgres);
    const env = libpqEnvFor({ port: postgres.cluster.port, caFile: postgres.caFile }, logins.backup);
    const { stdout } = await runTool(findPgProgram('pg_dump'), ['--schema=telemetry', '--data-only', '--table=telemetry.reading*'], {
      env,
    });
    assert.match(stdout, new RegExp(`${NHS_NUMBER}\\tcontract-device\\tr-1\\t`));
  });

  test('backup: the server facts pms-backup reads (doctor, base-backup) are readable without pg_monitor', async () => {
    assert.ok(postgres);
    const c = materialiseContainer(objects, findPod(objects, 'CronJob/pms-backup-base'), 'pms-backup', {
      root: join(root, 'base-backup'),
      envOverrides: { POSTGRES_HOST: 'localhost', POSTGRES_PORT: String(postgres.cluster.port) },
    });
    const config = loadBackupConfig(c.env);
    assert.equal(config.postgres.user, logins.backup.user);
    const check = await checkPointInTimeRecovery(config.postgres);
    // Archiving itself is not set up here (no pms-backup on the server's PATH): only what the role may read is checked.
    assert.doesNotMatch(check.detail, /may not open replication|not readable/);
    assert.match(check.detail, check.ok ? /archive_command runs wal-push.*the role may take base backups/ : /archiving is failing/);
    assert.equal(await as(logins.backup, 'SELECT pg_has_role(current_user, $$pg_monitor$$, $$USAGE$$)'), 'f');
    assert.match(await as(logins.backup, 'SELECT system_identifier FROM pg_control_system()'), /^\d+$/);
  });

  test('backup: cannot write, even after turning its read-only default off', async () => {
    for (const sql of [
      INSERT_READING,
      'UPDATE telemetry.reading SET value = 0',
      'CREATE TABLE public.planted (x int)',
      'CREATE TEMPORARY TABLE planted (x int)',
    ])
      await refused(logins.backup, sql, ['25006']);
    // The read-only default is a second fence; the privileges are the first.
    for (const sql of [
      INSERT_READING,
      'UPDATE telemetry.reading SET value = 0',
      'DELETE FROM telemetry.device',
      'TRUNCATE telemetry.reading',
      'CREATE TABLE public.planted (x int)',
      'CREATE TABLE telemetry.planted (x int)',
      'CREATE TEMPORARY TABLE planted (x int)',
      'SELECT telemetry.ensure_reading_partition(current_date + 400)',
    ])
      await refused(logins.backup, `SET default_transaction_read_only = off; BEGIN READ WRITE; ${sql}`, ['42501']);
  });

  test('exporter: reads the statistics (pg_stat_*, other sessions included) but no table data', async () => {
    assert.equal(await as(logins.exporter, 'SELECT count(*) > 0 FROM pg_stat_database'), 't');
    assert.match(await as(logins.exporter, 'SELECT archived_count FROM pg_stat_archiver'), /^\d+$/);
    await as(logins.exporter, 'SELECT * FROM pg_stat_replication');
    await as(logins.exporter, 'SELECT datname, age(datfrozenxid) FROM pg_database WHERE datallowconn');
    // pg_read_all_stats: another login's query text is visible, not "<insufficient privilege>".
    const others = await as(logins.exporter, "SELECT count(*) FROM pg_stat_activity WHERE query = '<insufficient privilege>'");
    assert.equal(others, '0');
    for (const sql of [
      'SELECT * FROM telemetry.reading',
      'SELECT patient_nhs_number FROM telemetry.device',
      'SELECT * FROM telemetry.quarantined_reading',
      "SELECT pg_read_file('postgresql.conf')",
      'CREATE TABLE public.planted (x int)',
    ])
      await refused(logins.exporter, `BEGIN READ WRITE; ${sql}`, ['42501']);
    assert.equal(await as(logins.exporter, 'SELECT pg_has_role(current_user, $$pg_read_all_data$$, $$USAGE$$)'), 'f');
  });

  test('the pms_connect_* groups pg_hba.conf names hold no privilege of their own', async () => {
    // As the superuser over the socket: it sees every grant, in every database.
    const held = await socketPsql(
      `SELECT r.rolname FROM pg_roles r
        WHERE r.rolname LIKE 'pms\\_connect\\_%'
          AND (r.rolcanlogin OR r.rolsuper OR r.rolreplication OR r.rolcreaterole OR r.rolcreatedb OR r.rolbypassrls
               OR EXISTS (SELECT FROM pg_auth_members m WHERE m.member = r.oid)
               OR EXISTS (SELECT FROM pg_class c, aclexplode(c.relacl) a WHERE a.grantee = r.oid)
               OR EXISTS (SELECT FROM pg_proc p, aclexplode(p.proacl) a WHERE a.grantee = r.oid)
               OR EXISTS (SELECT FROM pg_namespace n, aclexplode(n.nspacl) a WHERE a.grantee = r.oid)
               OR EXISTS (SELECT FROM pg_database d, aclexplode(d.datacl) a WHERE a.grantee = r.oid))`,
      'patient_telemetry',
    );
    assert.equal(held.trim(), '');
    assert.equal((await socketPsql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'pms\\_connect\\_%'")).trim(), '5');
  });
});
