import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findPgProgram } from '../../postgres/binaries.js';
import { runTool } from '../../process/tool-process.js';
import { DEPLOY_DIR, renderKustomization } from './render.js';
import { type ConfiguredPostgres, startConfiguredPostgres } from './configured-postgres.js';

/**
 * Contract test: the postgresql.conf and pg_hba.conf from the rendered dev ConfigMap, mounted as
 * the StatefulSet mounts them and with container paths mapped to a temporary directory, start a
 * real PostgreSQL 15 that speaks TLS and refuses anything else.
 */
let postgres: ConfiguredPostgres | undefined;
let caFile: string;
const PASSWORD = 'contract-test-password';

before(async () => {
  const objects = await renderKustomization(join(DEPLOY_DIR, 'overlays', 'dev'));
  // A login with a SCRAM password, created while the throwaway cluster still trusts its socket.
  postgres = await startConfiguredPostgres(objects, {
    prepareSql: `SET password_encryption = 'scram-sha-256'; CREATE ROLE app LOGIN REPLICATION PASSWORD '${PASSWORD}'; GRANT pg_read_all_settings TO app;`,
  });
  caFile = postgres.caFile;
});

after(async () => {
  await postgres?.destroy();
});

/** psql over TCP with libpq settings in the environment (the password never in argv). */
async function psqlTcp(sql: string, libpq: Record<string, string>, password = PASSWORD, conninfo = 'dbname=postgres'): Promise<string> {
  const c = postgres?.cluster;
  assert.ok(c);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    PGHOST: 'localhost',
    PGHOSTADDR: '127.0.0.1',
    PGPORT: String(c.port),
    PGUSER: 'app',
    PGDATABASE: 'postgres',
    PGPASSWORD: password,
    PGCONNECT_TIMEOUT: '10',
    ...libpq,
  };
  const { stdout } = await runTool(findPgProgram('psql'), ['-X', '-qAt', '-v', 'ON_ERROR_STOP=1', '-d', conninfo, '-c', sql], { env });
  return stdout.trim();
}

describe('PostgreSQL configuration from the ConfigMap', () => {
  test('a verify-full TLS connection with a SCRAM password succeeds and is encrypted', async () => {
    const ssl = await psqlTcp('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()', {
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: caFile,
    });
    assert.equal(ssl, 't');
  });

  test('a connection without TLS is refused by pg_hba.conf', async () => {
    await assert.rejects(psqlTcp('SELECT 1', { PGSSLMODE: 'disable' }), /no encryption/);
  });

  test('a replication connection without TLS is refused, and with TLS it is accepted', async () => {
    const replication = 'dbname=postgres replication=true';
    await assert.rejects(psqlTcp('IDENTIFY_SYSTEM', { PGSSLMODE: 'disable' }, PASSWORD, replication), /no encryption/);
    assert.match(await psqlTcp('IDENTIFY_SYSTEM', { PGSSLMODE: 'verify-full', PGSSLROOTCERT: caFile }, PASSWORD, replication), /^\d+\|/);
  });

  test('a wrong password over TLS is refused (SCRAM, never trust)', async () => {
    await assert.rejects(psqlTcp('SELECT 1', { PGSSLMODE: 'require' }, 'wrong-password'), /password authentication failed/);
  });

  test('the telemetry tuning and archiving settings are in effect', async () => {
    const show = async (name: string): Promise<string> => psqlTcp(`SHOW ${name}`, { PGSSLMODE: 'require' });
    assert.equal(await show('ssl'), 'on');
    assert.equal(await show('ssl_min_protocol_version'), 'TLSv1.2');
    assert.equal(await show('password_encryption'), 'scram-sha-256');
    assert.equal(await show('wal_compression'), 'zstd');
    assert.equal(await show('max_wal_size'), '4GB');
    assert.equal(await show('archive_mode'), 'on');
    assert.equal(await show('archive_command'), 'pms-backup wal-push %p');
    assert.equal(await show('archive_timeout'), '5min');
    assert.equal(await show('autovacuum_vacuum_insert_scale_factor'), '0.05');
    assert.equal(await show('shared_preload_libraries'), 'pg_stat_statements');
  });
});
