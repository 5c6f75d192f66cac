import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isPmsError } from '../errors/catalogue.js';
import { REPO_ROOT } from '../testing/run-cli.js';
import { loadBackupConfig } from './config.js';
import { acceptedNames } from './settings.js';
import { loadTelemetryConfig } from './telemetry-config.js';
import { editDistance, suggestName } from './unknown-variables.js';

function problemsOf(load: () => unknown): string[] {
  try {
    load();
  } catch (error) {
    if (!isPmsError(error, 'PMS_ERR_CONFIG')) assert.fail(`expected PMS_ERR_CONFIG, got ${String(error)}`);
    assert.equal(error.exitCode, 2);
    return (error.details?.['problems'] as string[]) ?? [];
  }
  return [];
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(entry) ? [path] : [];
  });
}

describe('unknown BACKUP_* and POSTGRES_* variables', () => {
  test('edit distance counts single-character edits', () => {
    assert.equal(editDistance('', ''), 0);
    assert.equal(editDistance('abc', 'abc'), 0);
    assert.equal(editDistance('abc', 'ab'), 1);
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('BACKUP_REPOSITRY', 'BACKUP_REPOSITORY'), 1);
  });

  test('a misspelt variable is refused with the setting it was meant to be, its value never shown', () => {
    const problems = problemsOf(() =>
      loadBackupConfig({ BACKUP_REPOSITRY: 'file:///var/backups/pms', POSTGRES_PASWORD_FILE: '/run/secrets/top-secret-path' }),
    );
    assert.deepEqual(problems, [
      'BACKUP_REPOSITRY is not a pms-backup setting: did you mean BACKUP_REPOSITORY? (pms-backup --help lists them)',
      'POSTGRES_PASWORD_FILE is not a pms-backup setting: did you mean POSTGRES_PASSWORD_FILE? (pms-backup --help lists them)',
    ]);
  });

  test('a name far from every setting gets no guess', () => {
    assert.equal(suggestName('BACKUP_COMPLETELY_DIFFERENT'), undefined);
    const problems = problemsOf(() => loadBackupConfig({ BACKUP_COMPLETELY_DIFFERENT: 'x' }));
    assert.deepEqual(problems, [
      'BACKUP_COMPLETELY_DIFFERENT is not a pms-backup setting: check the spelling (pms-backup --help lists them)',
    ]);
  });

  test('NAME_FILE is accepted only for secrets and file settings', () => {
    assert.deepEqual(
      problemsOf(() => loadBackupConfig({ POSTGRES_USER_FILE: '/dev/null', BACKUP_GPG_KEY_ID_FILE: '' })),
      [],
    );
    assert.match(
      problemsOf(() => loadBackupConfig({ BACKUP_LOG_DIR_FILE: '/x' })).join('\n'),
      /BACKUP_LOG_DIR_FILE is not a pms-backup setting/,
    );
  });

  test('other prefixes are left alone; the postgres image’s own variables are accepted', () => {
    assert.deepEqual(
      problemsOf(() => loadBackupConfig({ TELEMETRY_PORT: '8080', PGDATA: '/x', POSTGRES_INITDB_ARGS: '--data-checksums', BACKUPS: 'x' })),
      [],
    );
  });

  test('pms-backup and pms-telemetry accept each other’s variables when they share an environment', () => {
    const shared = {
      POSTGRES_HOST: 'db',
      POSTGRES_USER_FILE: '/dev/null',
      POSTGRES_SSLMODE: 'require',
      BACKUP_REPOSITORY: 'file:///var/backups/pms',
      BACKUP_LOG_DIR: '/tmp',
      TELEMETRY_PORT: '8081',
      TELEMETRY_LOG_LEVEL: 'warn',
    };
    assert.deepEqual(
      problemsOf(() => loadBackupConfig(shared)),
      [],
    );
    assert.deepEqual(
      problemsOf(() => loadTelemetryConfig(shared)),
      [],
    );
    // pms-telemetry judges POSTGRES_* by the same table.
    assert.match(problemsOf(() => loadTelemetryConfig({ POSTGRES_HOTS: 'db' })).join('\n'), /did you mean POSTGRES_HOST\?/);
  });

  test('every BACKUP_* and POSTGRES_* variable the deploy manifests set is a setting', () => {
    const accepted = acceptedNames();
    const found = new Set<string>();
    for (const file of yamlFiles(join(REPO_ROOT, 'deploy'))) {
      for (const match of readFileSync(file, 'utf8').matchAll(/-\s+name:\s+((?:BACKUP|POSTGRES)_[A-Z0-9_]+)\s*$/gm)) {
        if (match[1]) found.add(match[1]);
      }
    }
    assert.ok(found.size >= 10, `the manifests were read: ${[...found].join(', ')}`);
    for (const name of found) assert.ok(accepted.has(name), `${name} (deploy/) would be refused`);
  });
});
