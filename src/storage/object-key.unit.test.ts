import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type PmsError, isPmsError } from '../errors/catalogue.js';
import { checkKey, checkPrefix, compareKeys } from './object-key.js';
import { checkMetadata } from './object-metadata.js';

const usage = (error: unknown): error is PmsError => isPmsError(error, 'PMS_ERR_USAGE');

test('repository keys are accepted unchanged, including dots inside names and non-ASCII text', () => {
  for (const key of [
    'backups/20260110T020000Z-3f9a/manifest.json',
    'a',
    'wal/00000001/x.partial.0123.zst.gpg',
    'a/..b/c..',
    'naïve/é',
    'a/.hidden',
  ]) {
    assert.equal(checkKey(key), key);
  }
});

test('keys that could escape the repository or change meaning are refused, not normalised', () => {
  for (const key of [
    '',
    '/etc/passwd',
    '../x',
    'a/../b',
    'a/./b',
    '.',
    'a//b',
    'a/',
    'a\\b',
    'a/\u0000b',
    'tab\there',
    'line\nbreak',
    'del\u007f',
  ]) {
    assert.throws(() => checkKey(key), usage, JSON.stringify(key));
  }
});

test('segments starting with .pms- are reserved for the drivers wherever they appear', () => {
  for (const key of ['.pms-tmp-1', 'a/.pms-meta/b', 'a/b/.pms-probe-x']) assert.throws(() => checkKey(key), usage, key);
  assert.equal(checkKey('a/x.pms-tmp'), 'a/x.pms-tmp');
  assert.equal(checkKey('a/.pms'), 'a/.pms');
});

test('the 1024-byte limit counts UTF-8 bytes, not characters (S3’s rule, kept by every driver)', () => {
  assert.equal(checkKey('k'.repeat(1024)).length, 1024);
  assert.throws(() => checkKey('k'.repeat(1025)), usage);
  assert.equal(checkKey('é'.repeat(512)).length, 512, '512 × 2 bytes');
  assert.throws(() => checkKey('é'.repeat(513)), usage, '513 characters, 1026 bytes');
});

test('the error names the key and why, so an operator can find the object', () => {
  assert.throws(
    () => checkKey('backups/../x'),
    (error) => usage(error) && error.message === 'key "backups/../x" is invalid: it must not contain . or .. segments',
  );
});

test('a prefix is a plain string prefix: empty, a folder, or part of a name; escapes are refused', () => {
  for (const prefix of ['', 'backups/', 'backups/2026', 'a/b/', 'wal/00000001/0000000100']) assert.equal(checkPrefix(prefix), prefix);
  for (const prefix of ['/', '/backups/', 'a//', '../', 'a/../', '.pms-tmp', 'a/.pms-meta/']) {
    assert.throws(() => checkPrefix(prefix), usage, JSON.stringify(prefix));
  }
});

test('keys compare by UTF-8 bytes, as S3 lists them, not by JavaScript’s UTF-16 order', () => {
  assert.ok(compareKeys('a-b', 'a/b') < 0, "'-' is 0x2D, '/' is 0x2F");
  assert.ok(compareKeys('A', 'a') < 0);
  assert.ok(compareKeys('a', 'a/b') < 0);
  assert.equal(compareKeys('same', 'same'), 0);
  // U+FFFD is EF BF BD in UTF-8, U+1F600 is F0 9F 98 80: bytes put U+FFFD first, UTF-16 the emoji (D83D...).
  assert.ok('\u{1F600}' < '\uFFFD');
  assert.ok(compareKeys('\uFFFD', '\u{1F600}') < 0);
});

test('metadata is copied and kept when names are lower-case and values printable ASCII', () => {
  const given = { sha256: 'ab', 'pms-wal-bytes': '16777216', under_score: '' };
  const checked = checkMetadata(given);
  assert.deepEqual(checked, given);
  assert.notEqual(checked, given);
  assert.deepEqual(checkMetadata(undefined), {});
});

test('metadata S3 would mangle is refused before anything is written: upper case, spaces, non-ASCII, too large', () => {
  const refused: Array<Record<string, string>> = [
    { Sha256: 'x' },
    { 'a b': 'x' },
    { '-a': 'x' },
    { a: 'é' },
    { a: 'line\nbreak' },
    { a: 1 as unknown as string },
  ];
  for (const metadata of refused) {
    assert.throws(() => checkMetadata(metadata), usage, JSON.stringify(metadata));
  }
  assert.deepEqual(Object.keys(checkMetadata({ a: 'x'.repeat(2047) })), ['a'], '2048 bytes with its name');
  assert.throws(
    () => checkMetadata({ a: 'x'.repeat(2048) }),
    (error) => usage(error) && /2049 bytes/.test(error.message),
  );
});
