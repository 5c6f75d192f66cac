import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadBackupConfig, loadDrConfig } from './config.js';
import type { Env } from './env-source.js';
import { Problems } from './problems.js';
import { Secret } from './secret.js';
import { SettingReader } from './setting-reader.js';
import { acceptedNames, settingNames, settingSpec, settingsReadBy } from './settings.js';
import { loadTelemetryConfig } from './telemetry-config.js';

const dir = mkdtempSync(join(tmpdir(), 'pms-settings-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** An environment that records every name a loader looks up. */
function recording(values: Record<string, string>): { env: Env; read: Set<string> } {
  const read = new Set<string>();
  const env = new Proxy(values, {
    get(target, name) {
      if (typeof name === 'string') read.add(name);
      return Reflect.get(target, name);
    },
  });
  return { env, read };
}

describe('the settings table', () => {
  test('names are environment-variable names, and no NAME_FILE form is itself another setting', () => {
    const names = settingNames();
    for (const name of names) assert.match(name, /^[A-Z][A-Z0-9_]*[A-Z0-9]$/, name);
    for (const name of names) {
      const spec = settingSpec(name);
      if (spec.secret || spec.file) assert.ok(!names.includes(`${name}_FILE` as never), `${name}_FILE is both a file form and a setting`);
    }
    // Every name and file form counted once: nothing shadows anything else.
    const forms = names.flatMap((name) => (settingSpec(name).secret || settingSpec(name).file ? [name, `${name}_FILE`] : [name]));
    assert.equal(new Set(forms).size, forms.length);
    assert.equal(acceptedNames().size, forms.length);
  });

  test('every default parses under its own schema, and none is both a value and a derived text', () => {
    for (const name of settingNames()) {
      const spec = settingSpec(name);
      assert.ok(spec.default === undefined || spec.defaultText === undefined, `${name} has two defaults`);
      if (spec.default !== undefined) assert.ok(spec.schema.safeParse(spec.default).success, `${name}: default ${spec.default} is invalid`);
      assert.ok(!(spec.secret && spec.default !== undefined), `${name}: a secret with a default`);
    }
  });

  test('every secret is read from NAME_FILE as a Secret, trailing newline stripped', () => {
    const secrets = settingNames().filter((name) => settingSpec(name).secret);
    assert.ok(secrets.length >= 6, secrets.join());
    for (const name of secrets) {
      const file = join(dir, name);
      writeFileSync(file, `value-of-${name}\n`);
      const problems = new Problems();
      const value = new SettingReader({ [`${name}_FILE`]: file }, problems).get(name);
      assert.deepEqual(problems.list, []);
      assert.ok(value instanceof Secret, `${name} is a Secret`);
      assert.equal(value.reveal(), `value-of-${name}`);
      assert.ok(acceptedNames().has(`${name}_FILE`));
    }
  });

  test('an invalid secret or file setting is named but never echoed', () => {
    const file = join(dir, 'key-id');
    writeFileSync(file, 'not-hex-private-looking\n');
    const problems = new Problems();
    new SettingReader({ BACKUP_GPG_KEY_ID_FILE: file }, problems).get('BACKUP_GPG_KEY_ID');
    assert.equal(problems.list.length, 1);
    assert.match(problems.list[0] ?? '', /^BACKUP_GPG_KEY_ID is invalid: use a hex key ID/);
    assert.doesNotMatch(problems.list[0] ?? '', /private-looking/);
  });

  test('every row has one line of help, and a required setting says what to do when it is missing', () => {
    for (const name of settingNames()) {
      const spec = settingSpec(name);
      assert.ok(spec.help.length > 0 && !spec.help.includes('\n'), `${name}: help`);
      if (spec.requiredFor !== undefined) assert.ok(spec.missing, `${name}: required without a message`);
      assert.equal(
        spec.readBy.length === 0,
        spec.group === 'postgres-image',
        `${name}: only the postgres image's variables are read by nobody`,
      );
    }
  });

  test('the loaders read every setting of their program from the table (no dead rows, no side doors)', () => {
    const backup = recording({ BACKUP_REPOSITORY: 's3://bucket-a', AWS_REGION: 'eu-west-2', PUSHGATEWAY_URL: 'http://pgw:9091' });
    loadBackupConfig(backup.env, { repository: true });
    const dr = recording({ BACKUP_DR_REPOSITORY: 's3://bucket-b', BACKUP_DR_AWS_REGION: 'eu-west-1' });
    loadDrConfig(dr.env, undefined);
    const telemetry = recording({ POSTGRES_SSLROOTCERT: '/etc/ssl/pg-ca.crt' });
    loadTelemetryConfig(telemetry.env);
    for (const name of settingsReadBy('pms-backup'))
      assert.ok(backup.read.has(name) || dr.read.has(name), `pms-backup never reads ${name}`);
    for (const name of settingsReadBy('pms-telemetry')) assert.ok(telemetry.read.has(name), `pms-telemetry never reads ${name}`);
    const accepted = acceptedNames();
    for (const name of [...backup.read, ...dr.read, ...telemetry.read])
      assert.ok(accepted.has(name), `${name} is read but not in the table`);
  });
});
