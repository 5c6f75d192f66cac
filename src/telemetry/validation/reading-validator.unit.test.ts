import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_AGE_MS, MAX_FUTURE_MS, type Validation, validateReading } from './reading-validator.js';
import type { RejectionReason } from './rejection-reason.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');
const PATIENT = '9434765919';
const context = { nowMs: NOW, patientNhsNumber: PATIENT };

const heartRate = (fields: Record<string, unknown> = {}) => ({
  readingId: 'r-1',
  code: '8867-4',
  value: 72,
  unit: '/min',
  measuredAt: '2026-03-01T11:59:00Z',
  ...fields,
});
const bloodPressure = (components: unknown, fields: Record<string, unknown> = {}) => ({
  readingId: 'bp-1',
  code: '85354-9',
  unit: 'mm[Hg]',
  components,
  measuredAt: '2026-03-01T11:59:00+01:00',
  ...fields,
});
const bp = (systolic: number, diastolic: number) => [
  { code: '8480-6', value: systolic, unit: 'mm[Hg]' },
  { code: '8462-4', value: diastolic },
];

function reason(result: Validation): RejectionReason | 'ok' {
  return result.ok ? 'ok' : result.rejection.reason;
}

test('a plausible single-valued reading passes with its value, unit and device time (offset kept)', () => {
  const result = validateReading(heartRate({ measuredAt: '2026-03-01T12:59:00.123456+01:00' }), context);
  assert.ok(result.ok);
  assert.deepEqual(result.reading, {
    readingId: 'r-1',
    code: '8867-4',
    value: 72,
    unit: '/min',
    systolic: null,
    diastolic: null,
    measuredAt: { epochMs: Date.parse('2026-03-01T11:59:00.123Z'), offsetMinutes: 60, text: '2026-03-01T12:59:00.123456+01:00' },
    status: 'final',
  });
});

test('a blood pressure panel passes with both components, in either order, and no value', () => {
  const result = validateReading(bloodPressure([...bp(120, 80)].reverse()), context);
  assert.ok(result.ok);
  assert.equal(result.reading.systolic, 120);
  assert.equal(result.reading.diastolic, 80);
  assert.equal(result.reading.value, null);
});

test('range limits are inclusive: the boundary values pass and values just outside do not', () => {
  assert.equal(reason(validateReading(heartRate({ value: 20 }), context)), 'ok');
  assert.equal(reason(validateReading(heartRate({ value: 300 }), context)), 'ok');
  assert.equal(reason(validateReading(heartRate({ value: 19.999 }), context)), 'implausible-value');
  assert.equal(reason(validateReading(heartRate({ value: 300.001 }), context)), 'implausible-value');
  const temperature = { code: '8310-5', unit: 'Cel' };
  assert.equal(reason(validateReading(heartRate({ ...temperature, value: 98.6 }), context)), 'implausible-value', '°F sent as Cel');
  assert.equal(reason(validateReading(heartRate({ ...temperature, value: 37.2 }), context)), 'ok');
});

test('steps must be a whole number, and the rejection says so', () => {
  const steps = (value: number) => heartRate({ code: '41950-7', unit: '/d', value });
  assert.equal(reason(validateReading(steps(0), context)), 'ok');
  const fractional = validateReading(steps(1000.5), context);
  assert.ok(!fractional.ok);
  assert.equal(fractional.rejection.reason, 'implausible-value');
  assert.match(fractional.rejection.detail, /a whole number between 0 and 200000/);
});

test('a value that is not a finite number is invalid-value, whatever it looks like', () => {
  for (const value of ['72', null, undefined, Number.NaN, Number.POSITIVE_INFINITY, [72], { value: 72 }]) {
    assert.equal(reason(validateReading(heartRate({ value }), context)), 'invalid-value', String(value));
  }
});

test('a reading that is not an object, or has no usable readingId, is rejected without an id', () => {
  for (const input of [null, 42, 'reading', [heartRate()]]) {
    const result = validateReading(input, context);
    assert.ok(!result.ok);
    assert.deepEqual([result.rejection.reason, result.rejection.readingId], ['invalid-reading', null]);
  }
  for (const readingId of [undefined, '', '-starts-with-dash', 'has space', 'x'.repeat(129), 7]) {
    const result = validateReading(heartRate({ readingId }), context);
    assert.ok(!result.ok);
    assert.deepEqual([result.rejection.reason, result.rejection.readingId], ['invalid-reading-id', null], String(readingId));
  }
  assert.equal(reason(validateReading(heartRate({ readingId: `a${'x'.repeat(127)}` }), context)), 'ok', '128 characters');
  assert.equal(reason(validateReading(heartRate({ readingId: 'dev-7:2026.03.01_1' }), context)), 'ok');
});

test('unknown fields are refused by name, at most five listed', () => {
  const result = validateReading(heartRate({ a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, status: 'final' }), context);
  assert.ok(!result.ok);
  assert.equal(result.rejection.reason, 'unknown-field');
  assert.equal(result.rejection.detail, 'unknown field(s): a, b, c, d, e');
});

test('a reading naming another patient is refused, and the rejection names neither patient', () => {
  const result = validateReading(heartRate({ patientId: '4010232137' }), context);
  assert.ok(!result.ok);
  assert.equal(result.rejection.reason, 'patient-mismatch');
  assert.ok(!result.rejection.detail.includes('4010232137') && !result.rejection.detail.includes(PATIENT));
  assert.equal(reason(validateReading(heartRate({ patientId: PATIENT }), context)), 'ok');
  assert.equal(reason(validateReading(heartRate({ patientId: Number(PATIENT) }), context)), 'patient-mismatch');
});

test('codes outside the vital-signs profile and units other than the one required are refused', () => {
  assert.equal(reason(validateReading(heartRate({ code: '8867-5' }), context)), 'unknown-code');
  assert.equal(reason(validateReading(heartRate({ code: 'toString' }), context)), 'unknown-code');
  assert.equal(reason(validateReading(heartRate({ unit: 'bpm' }), context)), 'wrong-unit');
  assert.equal(reason(validateReading(heartRate({ unit: undefined }), context)), 'wrong-unit');
});

test('blood pressure: each malformed panel gets invalid-components, an impossible one implausible-value', () => {
  const cases: Array<[unknown, RejectionReason]> = [
    [[], 'invalid-components'],
    [{ systolic: 120 }, 'invalid-components'],
    [[bp(120, 80)[0]], 'invalid-components'],
    [[...bp(120, 80), { code: '8480-6', value: 121 }], 'invalid-components'],
    [[{ code: '8867-4', value: 72 }], 'invalid-components'],
    [[{ ...bp(120, 80)[0], note: 'x' }, bp(120, 80)[1]], 'invalid-components'],
    [[{ code: '8480-6', value: 120, unit: 'kPa' }, bp(120, 80)[1]], 'invalid-components'],
    [[{ code: '8480-6', value: '120' }, bp(120, 80)[1]], 'invalid-components'],
    [[null, bp(120, 80)[1]], 'invalid-components'],
    [bp(80, 80), 'implausible-value'],
    [bp(70, 90), 'implausible-value'],
    [bp(301, 80), 'implausible-value'],
    [bp(120, 19), 'implausible-value'],
  ];
  for (const [components, expected] of cases) {
    assert.equal(reason(validateReading(bloodPressure(components), context)), expected, JSON.stringify(components));
  }
  assert.equal(reason(validateReading(bloodPressure(bp(120, 80), { value: 120 }), context)), 'invalid-value');
  assert.equal(reason(validateReading(heartRate({ components: bp(120, 80) }), context)), 'invalid-components');
});

test('measuredAt may be up to 5 minutes ahead (device clocks drift) and up to 30 days old, not a millisecond more', () => {
  const at = (ms: number) => heartRate({ measuredAt: new Date(ms).toISOString() });
  assert.equal(reason(validateReading(at(NOW + MAX_FUTURE_MS), context)), 'ok');
  assert.equal(reason(validateReading(at(NOW + MAX_FUTURE_MS + 1), context)), 'measured-in-future');
  assert.equal(reason(validateReading(at(NOW - MAX_AGE_MS), context)), 'ok');
  assert.equal(reason(validateReading(at(NOW - MAX_AGE_MS - 1), context)), 'measured-too-old');
});

test('measuredAt without an offset or on an impossible date is invalid-measured-at', () => {
  for (const measuredAt of ['2026-03-01T11:59:00', '2026-02-30T11:59:00Z', 1_772_366_340_000, undefined, '']) {
    assert.equal(reason(validateReading(heartRate({ measuredAt }), context)), 'invalid-measured-at', String(measuredAt));
  }
});
