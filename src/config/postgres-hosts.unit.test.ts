import assert from 'node:assert/strict';
import { test } from 'node:test';
import { libpqEnv } from '../postgres/connection-options.js';
import { loadBackupConfig } from './config.js';
import { endpointsOf } from './postgres-config.js';

const TLS = { POSTGRES_SSLMODE: 'verify-full', POSTGRES_SSLROOTCERT: '/ca.crt' };

test('POSTGRES_HOST h1,h2,h3 with one port or one per host gives libpq’s list, and BACKUP_FROM_STANDBY defaults to prefer', () => {
  const one = loadBackupConfig({ ...TLS, POSTGRES_HOST: 'pg-0, pg-1,pg-2', POSTGRES_PORT: '5433' });
  assert.deepEqual(endpointsOf(one.postgres), [
    { host: 'pg-0', port: 5433 },
    { host: 'pg-1', port: 5433 },
    { host: 'pg-2', port: 5433 },
  ]);
  assert.equal(one.fromStandby, 'prefer');
  const each = loadBackupConfig({ ...TLS, POSTGRES_HOST: 'a,b', POSTGRES_PORT: '5001,5002' });
  assert.deepEqual(endpointsOf(each.postgres), [
    { host: 'a', port: 5001 },
    { host: 'b', port: 5002 },
  ]);
  const env = libpqEnv(each.postgres);
  assert.equal(env['PGHOST'], 'a,b');
  assert.equal(env['PGPORT'], '5001,5002');
  assert.equal(env['PGTARGETSESSIONATTRS'], 'read-write');
  const single = loadBackupConfig({ ...TLS, POSTGRES_HOST: 'db' });
  assert.equal(single.fromStandby, 'no');
  assert.equal(single.postgres.endpoints, undefined);
  assert.equal(libpqEnv(single.postgres)['PGTARGETSESSIONATTRS'], undefined);
  assert.equal(loadBackupConfig({ ...TLS, POSTGRES_HOST: 'a,b', BACKUP_FROM_STANDBY: 'require' }).fromStandby, 'require');
});

test('a port count that matches neither one nor the hosts, an empty host, a bad port or mode are refused by name', () => {
  const problems = (env: Record<string, string>): string => {
    try {
      loadBackupConfig({ ...TLS, ...env });
    } catch (error) {
      return (error as Error).message;
    }
    return '';
  };
  assert.match(problems({ POSTGRES_HOST: 'a,b,c', POSTGRES_PORT: '5001,5002' }), /POSTGRES_PORT lists 2 ports for 3 POSTGRES_HOST entries/);
  assert.match(problems({ POSTGRES_HOST: 'a,,c' }), /POSTGRES_HOST="a,,c" is invalid: list hosts as h1,h2,h3 with no empty entry/);
  assert.match(problems({ POSTGRES_HOST: 'a,b', POSTGRES_PORT: '5001,x' }), /POSTGRES_PORT="5001,x" is invalid/);
  assert.match(
    problems({ POSTGRES_HOST: 'a,b', BACKUP_FROM_STANDBY: 'always' }),
    /BACKUP_FROM_STANDBY="always" is invalid: use one of no, prefer, require/,
  );
});
