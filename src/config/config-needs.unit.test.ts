import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CommandContext } from '../cli/backup-command.js';
import { isPmsError } from '../errors/catalogue.js';
import { type ConfigNeeds, type RepositoryConfig, loadBackupConfig } from './config.js';
import { type Need, settingNames, settingSpec } from './settings.js';

// Type-level checks: compiled with the rest (tsc fails if the narrowing breaks), never run.
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(_: T): void {}
export function narrowingTypeChecks(): void {
  const create = loadBackupConfig({}, { repository: true, encryption: true });
  expectType<Equal<typeof create.keys.publicKeyFile, string>>(true);
  expectType<Equal<typeof create.keys.keyId, string>>(true);
  expectType<Equal<typeof create.repository, RepositoryConfig>>(true);
  expectType<Equal<typeof create.keys.privateKeyFile, string | undefined>>(true);
  const restore = loadBackupConfig({}, { repository: true, decryption: true });
  expectType<Equal<typeof restore.keys.privateKeyFile, string>>(true);
  expectType<Equal<typeof restore.keys.publicKeyFile, string | undefined>>(true);
  const keys = loadBackupConfig({}, {});
  expectType<Equal<typeof keys.repository, RepositoryConfig | undefined>>(true);
  expectType<Equal<typeof keys.keys.publicKeyFile, string | undefined>>(true);
  // A need that may be false narrows nothing.
  const maybe = loadBackupConfig({}, { encryption: Math.random() > 0.5 });
  expectType<Equal<typeof maybe.keys.publicKeyFile, string | undefined>>(true);
  // What a command body sees (runBackupCommand infers N from the spec's literal needs).
  expectType<Equal<CommandContext<{ encryption: true }>['config']['keys']['keyId'], string>>(true);
  expectType<Equal<CommandContext<{ decryption: true }>['config']['keys']['privateKeyFile'], string>>(true);
  expectType<Equal<CommandContext<{ repository: true }>['config']['repository'], RepositoryConfig>>(true);
}

/** Enough for every need: a repository and all keys. */
const complete: Record<string, string> = {
  BACKUP_REPOSITORY: 'file:///var/backups/pms',
  BACKUP_GPG_PUBLIC_KEY_FILE: '/k/pub.asc',
  BACKUP_GPG_KEY_ID: 'ABCDEF0123456789',
  BACKUP_GPG_PRIVATE_KEY_FILE: '/k/private.asc',
};

function problemsOf(env: Record<string, string>, needs: ConfigNeeds): string[] {
  try {
    loadBackupConfig(env, needs);
  } catch (error) {
    if (!isPmsError(error, 'PMS_ERR_CONFIG')) assert.fail(`expected PMS_ERR_CONFIG, got ${String(error)}`);
    assert.equal(error.exitCode, 2);
    return (error.details?.['problems'] as string[]) ?? [];
  }
  return [];
}

describe('per-command needs', () => {
  const needs: Need[] = ['repository', 'encryption', 'decryption'];

  for (const need of needs) {
    const required = settingNames().filter((name) => settingSpec(name).requiredFor === need);
    test(`${need}: each of ${required.join(', ')} missing is PMS_ERR_CONFIG naming it; otherwise not required`, () => {
      assert.ok(required.length > 0);
      for (const name of required) {
        const { [name]: _dropped, ...without } = complete;
        assert.deepEqual(problemsOf(without, { [need]: true }), [`${name} is not set: ${settingSpec(name).missing}`]);
        assert.deepEqual(problemsOf(without, { [need]: false }), []);
        assert.deepEqual(problemsOf(without, {}), []);
      }
    });
  }

  test('every field the types narrow is backed by a setting the table requires for that need', () => {
    // BackupConfigFor's promises, one by one: removing a requiredFor here would make the types lie.
    assert.equal(settingSpec('BACKUP_REPOSITORY').requiredFor, 'repository');
    assert.equal(settingSpec('BACKUP_GPG_PUBLIC_KEY_FILE').requiredFor, 'encryption');
    assert.equal(settingSpec('BACKUP_GPG_KEY_ID').requiredFor, 'encryption');
    assert.equal(settingSpec('BACKUP_GPG_PRIVATE_KEY_FILE').requiredFor, 'decryption');
  });

  test('with the needs met, the narrowed fields are present at run time too', () => {
    const config = loadBackupConfig(complete, { repository: true, encryption: true, decryption: true });
    assert.equal(config.repository.url, 'file:///var/backups/pms');
    assert.equal(config.keys.publicKeyFile, '/k/pub.asc');
    assert.equal(config.keys.keyId, 'ABCDEF0123456789');
    assert.equal(config.keys.privateKeyFile, '/k/private.asc');
  });

  test('a repository derived from S3_BUCKET satisfies the repository need', () => {
    assert.deepEqual(problemsOf({ S3_BUCKET: 'pms-backups', AWS_REGION: 'eu-west-2' }, { repository: true }), []);
  });

  test('an invalid required setting is reported once, as invalid rather than missing', () => {
    assert.deepEqual(problemsOf({ ...complete, BACKUP_REPOSITORY: 'ftp://x' }, { repository: true }), [
      'BACKUP_REPOSITORY="ftp://x" is invalid: use s3://bucket/optional/prefix or file:///absolute/path',
    ]);
  });
});
