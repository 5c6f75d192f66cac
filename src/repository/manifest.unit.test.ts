import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isPmsError } from '../errors/catalogue.js';
import { baseManifest, logicalManifest } from '../testing/manifest-fixtures.js';
import { parseManifest } from './manifest.js';

const logical = logicalManifest('2026-01-10T02:00:00.000Z');
const base = baseManifest('2026-01-10T03:00:00.000Z', {
  startWalSegment: '000000010000000000000002',
  stopWalSegment: '000000010000000000000003',
});
const KEY = 'backups/x/manifest.json';

function rejects(raw: string, pattern: RegExp): void {
  assert.throws(
    () => parseManifest(raw, KEY),
    (error) => {
      assert.ok(isPmsError(error, 'PMS_ERR_MANIFEST'), String(error));
      assert.match(error.message, pattern);
      assert.ok(error.message.includes(KEY) && error.message.includes('restore another backup'), error.message);
      return true;
    },
  );
}

const edited = (manifest: object, change: Record<string, unknown>): string => JSON.stringify({ ...manifest, ...change });

test('logical and base manifests parse to what was written, from a Buffer or a string', () => {
  assert.deepEqual(parseManifest(Buffer.from(JSON.stringify(logical, null, 2)), KEY), logical);
  assert.deepEqual(parseManifest(JSON.stringify(base), KEY), base);
});

test('text that is not JSON is PMS_ERR_MANIFEST saying so (a truncated upload, a hand edit)', () => {
  rejects(JSON.stringify(logical).slice(0, -1), /is not valid JSON/);
  rejects('', /is not valid JSON/);
});

test('an unknown field is refused, not half-trusted, and named by its path', () => {
  rejects(edited(logical, { restoredBy: 'someone' }), /\(root\): Unrecognized key/);
  rejects(edited(logical, { bytes: { ...logical.bytes, extra: 1 } }), /bytes: Unrecognized key/);
});

test('a manifest of another format version or an unknown kind is refused', () => {
  rejects(edited(logical, { formatVersion: 2 }), /formatVersion/);
  rejects(edited(logical, { kind: 'incremental' }), /kind/);
  rejects(JSON.stringify([logical]), /\(root\)/);
});

test('what a restore relies on is checked: objects, sizes, hashes, key fingerprints, WAL positions', () => {
  rejects(edited(logical, { objects: [] }), /objects/);
  rejects(edited(logical, { objects: [{ ...logical.objects[0], sha256: 'AB'.repeat(32) }] }), /objects\.0\.sha256/);
  rejects(edited(logical, { objects: [{ ...logical.objects[0], bytes: -1 }] }), /objects\.0\.bytes/);
  rejects(edited(logical, { objects: [{ ...logical.objects[0], bytes: 1.5 }] }), /objects\.0\.bytes/);
  rejects(edited(logical, { keyFingerprints: ['a1b2c3d4e5f60718293a4b5c6d7e8f9012345678'] }), /keyFingerprints\.0/);
  rejects(edited(logical, { finishedAt: '2026-01-10 02:01:00' }), /finishedAt/);
  rejects(edited(base, { stopLsn: '0/2000138/1' }), /stopLsn/);
  rejects(edited(base, { stopWalSegment: '00000001000000000000003' }), /stopWalSegment/);
  rejects(edited(base, { timeline: 0 }), /timeline/);
  // As a JSON number it would already have lost digits when parsed: only the string form is taken.
  rejects(
    JSON.stringify(base).replace('"systemIdentifier":"7301234567890123457"', '"systemIdentifier":7301234567890123457'),
    /systemIdentifier/,
  );
});

test('a base manifest cannot pass as logical: fields of the other kind are unknown', () => {
  rejects(edited(base, { kind: 'logical' }), /Unrecognized key|database/);
});

test('at most five problems are listed so the message stays readable', () => {
  const { id: _id, serverVersion: _v, startedAt: _s, finishedAt: _f, host: _h, createdBy: _c, ...stripped } = logical;
  assert.throws(
    () => parseManifest(JSON.stringify(stripped), KEY),
    (error) => {
      assert.ok(isPmsError(error, 'PMS_ERR_MANIFEST'));
      const problems = /is invalid \((.*)\): the backup/.exec(error.message)?.[1]?.split('; ') ?? [];
      assert.equal(problems.length, 5, error.message);
      assert.ok(!error.message.includes('createdBy'), 'the sixth problem is left out');
      return true;
    },
  );
});
