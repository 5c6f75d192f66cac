import { classifyCipherError } from '../crypto/stream-cipher.js';
import { isPmsError } from '../errors/catalogue.js';

/**
 * The one rule for which error wins when several stages of a byte path fail together (a
 * tampered object also breaks the pipe into pg_restore): integrity and trust first, because they explain
 * the others, then key, repository and not-found errors, then a helper program's own failure
 * (tar on a full disk), then anything else; an abort only when nothing better is known.
 */
export function pickRootCause(errors: readonly unknown[]): unknown {
  if (errors.length === 0) return undefined;
  const best = [...errors].sort((a, b) => rank(a) - rank(b))[0];
  return classifyCipherError(best) ?? best;
}

function rank(error: unknown): number {
  if (classifyCipherError(error) || isPmsError(error, 'PMS_ERR_INTEGRITY') || isPmsError(error, 'PMS_ERR_UNTRUSTED')) return 0;
  if (isPmsError(error, 'PMS_ERR_KEY') || isPmsError(error, 'PMS_ERR_REPO_UNAVAILABLE') || isPmsError(error, 'PMS_ERR_NOT_FOUND')) return 1;
  if (isPmsError(error, 'PMS_ERR_TOOL_FAILED')) return 2;
  if (isPmsError(error, 'PMS_ERR_ABORTED')) return 5;
  if (isPmsError(error)) return 3;
  return 4;
}
