import { PmsError } from '../errors/catalogue.js';

/**
 * Names starting with this are the drivers' own bookkeeping (temporary files, metadata
 * sidecars). Refusing them as keys means list() can hide them without ever hiding user data.
 */
export const RESERVED_PREFIX = '.pms-';

const MAX_KEY_BYTES = 1024; // S3's limit; the filesystem driver keeps the same so keys move freely.

function rejectKey(what: string, value: string, why: string): never {
  throw new PmsError('PMS_ERR_USAGE', `${what} ${JSON.stringify(value)} is invalid: ${why}`, {
    details: { [what]: value },
  });
}

/**
 * Checks an object key: a relative '/'-separated path such as `backups/<id>/manifest.json`.
 * Rejected rather than normalised, because a key that silently changes meaning
 * (`a/../b`, `/etc/passwd`, `a//b`) would let a manifest point outside the repository.
 */
export function checkKey(key: string): string {
  if (typeof key !== 'string' || key === '') rejectKey('key', String(key), 'it must not be empty');
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) rejectKey('key', key, `it must be at most ${MAX_KEY_BYTES} bytes`);
  if (key.startsWith('/')) rejectKey('key', key, 'it must be relative to the repository root (no leading /)');
  if (key.includes('\\')) rejectKey('key', key, 'use / as the separator, not \\');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what this rejects
  if (/[\u0000-\u001f\u007f]/.test(key)) rejectKey('key', key, 'it must not contain control characters');
  for (const segment of key.split('/')) {
    if (segment === '') rejectKey('key', key, 'it must not contain empty segments (// or a trailing /)');
    if (segment === '.' || segment === '..') rejectKey('key', key, 'it must not contain . or .. segments');
    if (segment.startsWith(RESERVED_PREFIX)) rejectKey('key', key, `segments starting with ${RESERVED_PREFIX} are reserved`);
  }
  return key;
}

/**
 * Checks a listing prefix. A prefix is a plain string prefix of keys (as in S3): `backups/2024`
 * matches `backups/2024-01/x`. It may be empty or end with '/', but every complete segment
 * must be a valid key segment.
 */
export function checkPrefix(prefix: string): string {
  if (prefix === '') return prefix;
  const body = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  if (body === '') rejectKey('prefix', prefix, 'use "" for the whole repository');
  try {
    checkKey(body);
  } catch {
    rejectKey('prefix', prefix, 'it must be a relative /-separated path without .., empty or reserved segments');
  }
  return prefix;
}

/** Byte-wise (UTF-8) comparison: the order S3 lists keys in, which the fs driver reproduces. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
