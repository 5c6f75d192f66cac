import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { isPmsError } from '../../errors/catalogue.js';
import { planRestore } from './restore-options.js';

const usage = (message: RegExp) => (error: unknown) => isPmsError(error, 'PMS_ERR_USAGE') && message.test(error.message);

describe('restore flag rules', () => {
  test('a logical restore needs an id and --target-db', () => {
    assert.throws(() => planRestore(undefined, { table: [], targetDb: 'x' }), usage(/needs a backup id/));
    assert.throws(() => planRestore('latest', { table: [] }), usage(/--target-db/));
  });

  test('a logical restore carries its scope and --no-owner', () => {
    assert.deepEqual(planRestore('latest', { table: ['telemetry.readings'], targetDb: 'r', owner: false }), {
      kind: 'logical',
      id: 'latest',
      json: false,
      targetDb: 'r',
      noOwner: true,
      tables: ['telemetry.readings'],
      patient: undefined,
      allowUnsigned: false,
    });
    assert.equal(planRestore('x', { table: [], targetDb: 'r', patient: '9434765919' }).kind, 'logical');
  });

  test('--patient and --table are refused together', () => {
    assert.throws(() => planRestore('x', { table: ['a.b'], targetDb: 'r', patient: '9434765919' }), usage(/cannot be combined/));
  });

  test('--pitr needs --target-time and --pgdata, and takes --base', () => {
    assert.throws(() => planRestore(undefined, { table: [], pitr: true, pgdata: '/d' }), usage(/--target-time/));
    assert.throws(() => planRestore(undefined, { table: [], pitr: true, targetTime: 'latest' }), usage(/--pgdata/));
    assert.deepEqual(planRestore(undefined, { table: [], pitr: true, targetTime: 'latest', pgdata: '/d', base: 'b', json: true }), {
      kind: 'pitr',
      json: true,
      targetTime: 'latest',
      pgdata: '/d',
      base: 'b',
      allowUnsigned: false,
    });
  });

  test('--pitr refuses everything of a logical restore', () => {
    const pitr = { pitr: true, targetTime: 'latest', pgdata: '/d' };
    assert.throws(() => planRestore('latest', { ...pitr, table: [] }), usage(/not a backup id/));
    assert.throws(() => planRestore(undefined, { ...pitr, table: [], targetDb: 'x' }), usage(/not a backup id/));
    assert.throws(() => planRestore(undefined, { ...pitr, table: ['a.b'] }), usage(/not a backup id/));
    assert.throws(() => planRestore(undefined, { ...pitr, table: [], patient: '9434765919' }), usage(/not a backup id/));
  });

  test("--pitr's flags without --pitr are refused", () => {
    for (const extra of [{ targetTime: 'latest' }, { pgdata: '/d' }, { base: 'b' }]) {
      assert.throws(() => planRestore('latest', { table: [], targetDb: 'x', ...extra }), usage(/need --pitr/));
    }
  });
});

describe('restore --cleanup', () => {
  test('takes only --yes and --json', () => {
    assert.deepEqual(planRestore(undefined, { table: [], cleanup: true }), { kind: 'cleanup', json: false, yes: false });
    assert.deepEqual(planRestore(undefined, { table: [], cleanup: true, yes: true, json: true }), {
      kind: 'cleanup',
      json: true,
      yes: true,
    });
    assert.throws(
      () => planRestore('latest', { table: [], cleanup: true, targetDb: 'x' }),
      /--cleanup takes only --yes and --json, not a backup id, --target-db/,
    );
    assert.throws(() => planRestore('latest', { table: [], targetDb: 'x', yes: true }), /--yes goes with --cleanup/);
  });
});
