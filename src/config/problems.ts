import { PmsError } from '../errors/catalogue.js';
import { Secret } from './secret.js';

/** Collects every problem so the user fixes them all in one go (exit code 2). */
export class Problems {
  readonly list: string[] = [];
  add(message: string): void {
    this.list.push(message);
  }
}

/** Throws PMS_ERR_CONFIG listing every collected problem (exit code 2). */
export function throwIfProblems(problems: Problems): void {
  if (problems.list.length === 0) return;
  const n = problems.list.length;
  throw new PmsError(
    'PMS_ERR_CONFIG',
    `invalid configuration (${n} problem${n === 1 ? '' : 's'}):\n${problems.list.map((m) => `  - ${m}`).join('\n')}`,
    { details: { problems: problems.list } },
  );
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !(value instanceof Secret) && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
