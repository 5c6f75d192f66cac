import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isPmsError } from '../errors/catalogue.js';
import { checkKey } from '../storage/object-key.js';
import { type WalFile, parseWalFileName } from '../wal/wal-file-name.js';
import { WAL_SYSTEM_KEY, timelinePrefix, walFileOfKey, walObjectKey } from './wal-layout.js';

const SHA = '0123456789abcdef'.repeat(4);

function file(name: string): WalFile {
  const parsed = parseWalFileName(name);
  assert.ok(parsed, name);
  return parsed;
}

test('each kind of WAL file has its place: segments per timeline, history files apart', () => {
  assert.equal(walObjectKey(file('000000010000000000000003')), 'wal/00000001/000000010000000000000003.zst.gpg');
  assert.equal(walObjectKey(file('0000000A0000000000000003')), 'wal/0000000A/0000000A0000000000000003.zst.gpg');
  assert.equal(
    walObjectKey(file('000000010000000000000002.00000028.backup')),
    'wal/00000001/000000010000000000000002.00000028.backup.zst.gpg',
  );
  assert.equal(walObjectKey(file('00000002.history')), 'wal/history/00000002.history.zst.gpg');
  assert.equal(timelinePrefix(0x1f), 'wal/0000001F/');
});

test('a partial segment carries 12 hex digits of its content hash, so two different partials of one name both survive', () => {
  const partial = file('000000010000000000000005.partial');
  assert.equal(walObjectKey(partial, SHA), 'wal/00000001/000000010000000000000005.partial.0123456789ab.zst.gpg');
  assert.notEqual(walObjectKey(partial, SHA), walObjectKey(partial, 'f'.repeat(64)));
  assert.throws(
    () => walObjectKey(partial),
    (error) => isPmsError(error, 'PMS_ERR_INTERNAL'),
  );
});

test('every key the layout produces is a valid storage key and maps back to the same file', () => {
  for (const name of [
    '000000010000000000000003',
    '000000020000000100000000.partial',
    '000000010000000000000002.00000028.backup',
    '00000003.history',
  ]) {
    const key = walObjectKey(file(name), SHA);
    assert.equal(checkKey(key), key);
    assert.deepEqual(walFileOfKey(key), file(name), key);
  }
});

test('a partial key is read back as a partial, never as the complete segment of the same name', () => {
  const back = walFileOfKey('wal/00000001/000000010000000000000005.partial.0123456789ab.zst.gpg');
  assert.equal(back?.kind, 'partial');
  assert.equal(back?.name, '000000010000000000000005.partial');
});

test('keys that are not archived WAL files are not taken for one', () => {
  for (const key of [
    WAL_SYSTEM_KEY,
    'wal/00000001/000000010000000000000003',
    'wal/00000001/000000010000000000000003.zst',
    'backups/x/000000010000000000000003.zst.gpg',
    'wal/00000001/000000010000000000000005.partial.0123456789AB.zst.gpg',
    'wal/00000001/000000010000000000000005.partial.0123456789a.zst.gpg',
    'wal/00000001/junk.zst.gpg',
    'wal/.zst.gpg',
  ]) {
    assert.equal(walFileOfKey(key), undefined, key);
  }
});
