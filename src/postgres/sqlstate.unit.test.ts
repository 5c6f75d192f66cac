import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SQLSTATE, SQLSTATE_PREFIX } from './sqlstate.js';

describe('SQLSTATE constants', () => {
  test('every constant is a five-character SQLSTATE (digits and upper-case letters) and no two share a value', () => {
    const values = Object.values(SQLSTATE);
    for (const [name, value] of Object.entries(SQLSTATE)) assert.match(value, /^[0-9A-Z]{5}$/, name);
    assert.equal(new Set(values).size, values.length, 'duplicate SQLSTATE value');
  });

  test('prefixes are classes (two characters) or PostgreSQL subclasses (three), and distinct', () => {
    const prefixes = Object.values(SQLSTATE_PREFIX);
    for (const [name, value] of Object.entries(SQLSTATE_PREFIX)) assert.match(value, /^[0-9A-Z]{2,3}$/, name);
    assert.equal(new Set(prefixes).size, prefixes.length, 'duplicate prefix');
  });

  test('the objects are frozen, so no module can redefine a code', () => {
    assert.ok(Object.isFrozen(SQLSTATE));
    assert.ok(Object.isFrozen(SQLSTATE_PREFIX));
  });
});
