import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isPmsError } from '../errors/catalogue.js';
import { loadBackupConfig } from './config.js';

const s3 = { BACKUP_REPOSITORY: 's3://pms-production-backups', AWS_REGION: 'eu-west-2' };

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadBackupConfig(env, { repository: true });
  } catch (error) {
    if (!isPmsError(error, 'PMS_ERR_CONFIG')) assert.fail(`expected PMS_ERR_CONFIG, got ${String(error)}`);
    return (error.details?.['problems'] as string[]) ?? [];
  }
  return [];
}

function lockOf(env: Record<string, string>) {
  const repository = loadBackupConfig(env, { repository: true }).repository;
  if (repository?.kind !== 's3') assert.fail('expected an s3 repository');
  return repository.s3.objectLock;
}

describe('BACKUP_S3_OBJECT_LOCK_MODE / BACKUP_S3_OBJECT_LOCK_DAYS', () => {
  test('unset: no Object Lock', () => {
    assert.equal(lockOf(s3), undefined);
  });

  test('a mode and a number of days give the retention every object is written with', () => {
    assert.deepEqual(lockOf({ ...s3, BACKUP_S3_OBJECT_LOCK_MODE: 'compliance', BACKUP_S3_OBJECT_LOCK_DAYS: '35' }), {
      mode: 'COMPLIANCE',
      days: 35,
    });
    assert.deepEqual(lockOf({ ...s3, BACKUP_S3_OBJECT_LOCK_MODE: 'governance', BACKUP_S3_OBJECT_LOCK_DAYS: '1' }), {
      mode: 'GOVERNANCE',
      days: 1,
    });
  });

  test('the mode without days, days without the mode, a bad mode and bad days are each reported', () => {
    assert.deepEqual(problemsOf({ ...s3, BACKUP_S3_OBJECT_LOCK_MODE: 'compliance' }), [
      'BACKUP_S3_OBJECT_LOCK_DAYS is not set: Object Lock needs the number of days each object is retained',
    ]);
    assert.match(
      problemsOf({ ...s3, BACKUP_S3_OBJECT_LOCK_DAYS: '30' }).join(),
      /BACKUP_S3_OBJECT_LOCK_DAYS is set but BACKUP_S3_OBJECT_LOCK_MODE is not/,
    );
    assert.match(
      problemsOf({ ...s3, BACKUP_S3_OBJECT_LOCK_MODE: 'legal-hold', BACKUP_S3_OBJECT_LOCK_DAYS: '30' }).join(),
      /BACKUP_S3_OBJECT_LOCK_MODE="legal-hold" is invalid: use governance or compliance/,
    );
    for (const days of ['0', '-3', '1.5', 'thirty', '40000']) {
      assert.match(
        problemsOf({ ...s3, BACKUP_S3_OBJECT_LOCK_MODE: 'compliance', BACKUP_S3_OBJECT_LOCK_DAYS: days }).join(),
        /BACKUP_S3_OBJECT_LOCK_DAYS=.* is invalid: use a whole number of days/,
        days,
      );
    }
  });

  test('Object Lock on a file:// repository is refused', () => {
    assert.match(
      problemsOf({
        BACKUP_REPOSITORY: 'file:///var/backups/pms',
        BACKUP_S3_OBJECT_LOCK_MODE: 'compliance',
        BACKUP_S3_OBJECT_LOCK_DAYS: '30',
      }).join(),
      /Object Lock is an S3 feature/,
    );
  });
});
