import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { test } from 'node:test';
import type { PostgresConfig } from '../config/postgres-config.js';
import { Secret } from '../config/secret.js';
import { isPmsError } from '../errors/catalogue.js';
import { createPassfile, passfileLine } from './libpq-passfile.js';

test('passfile line: `:` and `\\` are escaped with `\\` in every field, the database is any', () => {
  assert.equal(passfileLine('db.example', 5432, 'backup', 'plain'), 'db.example:5432:*:backup:plain\n');
  assert.equal(passfileLine('::1', 6432, 'us:er\\x', 'p:a\\ss:'), '\\:\\:1:6432:*:us\\:er\\\\x:p\\:a\\\\ss\\:\n');
  assert.equal(passfileLine('/run/postgresql', 5432, undefined, '*'), '/run/postgresql:5432:*:*:*\n');
});

test('a password with a line break cannot be written to a passfile: PMS_ERR_CONFIG, without the password', () => {
  assert.throws(
    () => passfileLine('db', 5432, 'u', 'secret-part\nsecond-line'),
    (error) => isPmsError(error, 'PMS_ERR_CONFIG') && !error.message.includes('secret-part'),
  );
});

test('the passfile is 0600 in its own 0700 directory, and remove() deletes both', () => {
  const config: PostgresConfig = {
    host: '127.0.0.1',
    port: 5432,
    database: 'd',
    user: 'u',
    password: new Secret('pw'),
    sslmode: 'verify-full',
    sslrootcert: '/ca.crt',
  };
  const passfile = createPassfile(config);
  assert.ok(passfile);
  assert.equal(statSync(passfile.path).mode & 0o777, 0o600);
  assert.equal(statSync(dirname(passfile.path)).mode & 0o777, 0o700);
  assert.equal(readFileSync(passfile.path, 'utf8'), '127.0.0.1:5432:*:u:pw\n');
  passfile.remove();
  assert.equal(existsSync(dirname(passfile.path)), false);
  passfile.remove();
  assert.equal(createPassfile({ ...config, password: undefined }), undefined);
});
