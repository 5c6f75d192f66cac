import { PmsError } from '../errors/catalogue.js';

/**
 * The one wording of a failed check on a stored object: which object, which check, what was
 * expected and what was found. Nothing from the object is ever trusted after this.
 */
export function integrityMismatch(key: string, check: string, expected: string, found: string): PmsError {
  return new PmsError(
    'PMS_ERR_INTEGRITY',
    `${key} failed its ${check} check (expected ${expected}, found ${found}): the stored object was modified or truncated; refusing it`,
    { details: { key, check, expected, found } },
  );
}
