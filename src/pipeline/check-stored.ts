import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isPmsError } from '../errors/catalogue.js';
import type { Check } from '../repository/verification-record.js';
import type { Storage } from '../storage/storage.js';
import { ByteMeter } from '../streams/byte-meter.js';
import { integrityMismatch } from './integrity-error.js';

export interface StoredObject {
  readonly key: string;
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * verify's first check: every object's size (asked of the store) and sha256 (of its bytes, read
 * once, nothing decrypted) against the manifest. A modified or truncated object is named as
 * such, with both values, before any stage that would trip over its bytes sees it.
 */
export async function checkStoredObjects(
  storage: Storage,
  objects: readonly StoredObject[],
  signal?: AbortSignal,
  onProgress?: (checkedBytes: number, totalBytes: number) => void,
): Promise<Check> {
  const total = objects.reduce((sum, o) => sum + o.bytes, 0);
  let before = 0;
  try {
    for (const object of objects) {
      const info = await storage.head(object.key);
      if (info !== undefined && info.bytes !== object.bytes)
        throw integrityMismatch(object.key, 'size', `${object.bytes} bytes`, `${info.bytes} bytes`);
      const meter = new ByteMeter({ sha256: true, ...(onProgress ? { onProgress: (n: number) => onProgress(before + n, total) } : {}) });
      await pipeline(
        await storage.get(object.key, signal ? { signal } : {}),
        meter,
        new Writable({ write: (_chunk, _encoding, callback) => callback() }),
        ...(signal ? [{ signal }] : []),
      );
      if (meter.bytes !== object.bytes) throw integrityMismatch(object.key, 'size', `${object.bytes} bytes`, `${meter.bytes} bytes`);
      if (meter.sha256 !== object.sha256) throw integrityMismatch(object.key, 'sha256', object.sha256, meter.sha256);
      before += object.bytes;
    }
  } catch (error) {
    if (!isPmsError(error, 'PMS_ERR_INTEGRITY')) throw error;
    const check = (error.details as { check?: string } | undefined)?.check === 'size' ? 'size' : 'sha256';
    return { name: check, ok: false, detail: error.message };
  }
  return {
    name: 'sha256',
    ok: true,
    detail: `${objects.map((o) => o.key).join(', ')}: size and sha256 match the manifest (checked before decrypting)`,
  };
}
