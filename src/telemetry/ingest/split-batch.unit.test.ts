import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HttpError } from '../api/http-error.js';
import { MAX_ENVELOPE_DEPTH, MAX_READING_BYTES, MAX_READING_DEPTH } from './reading-limits.js';
import { splitBatch } from './split-batch.js';

const split = (body: string | Buffer, key = 'readings') => splitBatch(Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'), key);
const reasons = (body: string | Buffer) => split(body).items?.map((i) => (i.ok ? 'ok' : i.reason));
const httpCode = (body: string | Buffer, key = 'readings'): string => {
  try {
    split(body, key);
  } catch (error) {
    if (error instanceof HttpError) return error.code;
    throw error;
  }
  return 'none';
};

test('a well-formed batch splits into the same values JSON.parse gives', () => {
  const body = {
    readings: [{ a: 1, s: 'x,]}"\\' }, [1, [2, { b: '[' }]], 'str"ing', 42, null, { u: 'é☃😀', e: '\\u0041' }],
  };
  const result = split(JSON.stringify(body));
  assert.deepEqual(
    result.items?.map((i) => (i.ok ? i.value : i.reason)),
    body.readings,
  );
  assert.deepEqual(result.envelope, body);
});

test('a NUL costs only its element; broken JSON in one element sends every element through its own parse', () => {
  const result = split('{"readings":[{"a":1},{"b":"\\u0000"},[2]],"x":{"y":[3]}}');
  assert.deepEqual(
    result.items?.map((i) => (i.ok ? i.value : i.reason)),
    [{ a: 1 }, 'invalid-character', [2]],
  );
  const broken = split('{"readings":[{"a":1},{"b" 2}],"x":{"y":[3]}}');
  assert.deepEqual(
    broken.items?.map((i) => (i.ok ? i.value : i.reason)),
    [{ a: 1 }, 'malformed-reading'],
  );
  assert.deepEqual(broken.envelope, { readings: [0, 0], x: { y: [3] } }, 'the envelope around placeholders');
});

test('whitespace around elements and an empty array are fine; the key may be escaped; other keys stay in the envelope', () => {
  assert.deepEqual(split(' { "readings" : [ ] } ').items, []);
  assert.deepEqual(reasons('{"x":{"readings":[1]},"read\\u0069ngs":[ 1 ,\n2\t]}'), ['ok', 'ok']);
  assert.deepEqual(split('{"x":{"readings":[1]},"readings":[2]}').items, [{ ok: true, value: 2 }]);
  assert.equal(split('{"other":[1]}').items, undefined);
  assert.equal(split('[{"readings":[1]}]').items, undefined, 'only a top-level object has the key');
  assert.deepEqual(split('{"resourceType":"Bundle","entry":[{"resource":{}}]}', 'entry').items, [{ ok: true, value: { resource: {} } }]);
});

test('each bad element gets its own reason, keeping the bytes, and leaves its neighbours alone', () => {
  const deep = `${'['.repeat(MAX_READING_DEPTH + 1)}${']'.repeat(MAX_READING_DEPTH + 1)}`;
  const items = [
    '{"ok":1}',
    '{"n":"\\u0000"}',
    '{"\\u0000":1}',
    '{"s":"\\udc00"}',
    '{"pair":"\\ud83d\\ude00"}',
    deep,
    `${'['.repeat(MAX_READING_DEPTH)}${']'.repeat(MAX_READING_DEPTH)}`,
    `"${'x'.repeat(MAX_READING_BYTES)}"`,
    '{"a" 1}',
    'tru',
    '{"escaped":"\\\\u0000"}',
  ];
  assert.deepEqual(reasons(`{"readings":[${items.join(',')}]}`), [
    'ok',
    'invalid-character',
    'invalid-character',
    'invalid-character',
    'ok',
    'reading-too-deep',
    'ok',
    'reading-too-large',
    'malformed-reading',
    'malformed-reading',
    'ok',
  ]);
  const bad = Buffer.concat([Buffer.from('{"readings":[1,"'), Buffer.from([0xe2, 0x28, 0xa1]), Buffer.from('",2]}')]);
  const result = split(bad);
  assert.deepEqual(
    result.items?.map((i) => (i.ok ? 'ok' : i.reason)),
    ['ok', 'invalid-utf8', 'ok'],
  );
  const rejected = result.items?.[1];
  assert.ok(rejected && !rejected.ok && rejected.raw.equals(Buffer.from([0x22, 0xe2, 0x28, 0xa1, 0x22])));
});

test('200 000 levels inside one element cost one rejection, not the batch', () => {
  const n = 200_000;
  assert.deepEqual(reasons(`{"readings":[1,{"x":${'['.repeat(n)}${']'.repeat(n)}},2]}`), ['ok', 'reading-too-deep', 'ok']);
});

test('what cannot be split is refused as a whole', () => {
  assert.equal(httpCode(''), 'malformed-json');
  assert.equal(httpCode('{"readings":[1,]}'), 'malformed-json');
  assert.equal(httpCode('{"readings":[,1]}'), 'malformed-json');
  assert.equal(httpCode('{"readings":[1]'), 'malformed-json');
  assert.equal(httpCode('{"readings":[1]}}'), 'malformed-json');
  assert.equal(httpCode('{"readings":[1]} x'), 'malformed-json');
  assert.equal(httpCode('{"readings":[1], "x":"}'), 'malformed-json');
  assert.equal(httpCode('{"readings" [1]}'), 'malformed-json');
  assert.equal(httpCode('{"readings":[1}]'), 'malformed-json');
  assert.equal(httpCode(Buffer.from([0x7b, 0xff, 0x7d])), 'malformed-json');
  assert.equal(httpCode('{"readings":[1],"readings":[2]}'), 'invalid-body');
  assert.equal(httpCode(`{"readings":[1],"x":${'['.repeat(MAX_ENVELOPE_DEPTH)}${']'.repeat(MAX_ENVELOPE_DEPTH)}}`), 'invalid-body');
  assert.equal(httpCode(`{"readings":[1],"x":${'['.repeat(MAX_ENVELOPE_DEPTH - 1)}${']'.repeat(MAX_ENVELOPE_DEPTH - 1)}}`), 'none');
});
