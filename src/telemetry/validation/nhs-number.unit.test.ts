import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isValidNhsNumber, normaliseNhsNumber } from './nhs-number.js';

test('NHS numbers with a correct Modulus 11 check digit are valid', () => {
  for (const n of ['9434765919', '9990000018', '9990000026', '4010232137']) assert.equal(isValidNhsNumber(n), true, n);
});

test('a wrong check digit, a check value of 10, or a wrong length or character is invalid', () => {
  // 999000001x: only 8 is right. 000000006x has remainder 1 (6 × 2 = 12), i.e. check value 10, never issued.
  for (const n of ['9990000019', '9990000010', '0000000060', '0000000069', '999000001', '99900000188', '999000001a', ''])
    assert.equal(isValidNhsNumber(n), false, n);
});

test('spaces and hyphens written in the usual 3-3-4 grouping are removed', () => {
  assert.equal(normaliseNhsNumber('943 476 5919'), '9434765919');
  assert.equal(normaliseNhsNumber('943-476-5919'), '9434765919');
  assert.equal(normaliseNhsNumber('943 476 5918'), undefined);
});
