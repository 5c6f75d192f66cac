import { z } from 'zod';
import { PmsError } from '../errors/catalogue.js';
import { type Env, resolveWithFile } from './env-source.js';
import { Secret } from './secret.js';

export const portSchema = z.coerce.number().int().min(1).max(65535);
export const boolSchema = z.stringbool();

/** Collects every problem so the user fixes them all in one go (exit code 2). */
export class Problems {
  readonly list: string[] = [];
  add(message: string): void {
    this.list.push(message);
  }
  parse<T>(env: Env, name: string, schema: z.ZodType<T>, fallback: T, hint: string): T {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const result = schema.safeParse(raw);
    if (result.success) return result.data;
    // The raw value is shown because these variables are never secrets.
    this.add(`${name}=${JSON.stringify(raw)} is invalid: ${hint}`);
    return fallback;
  }
  secret(env: Env, name: string): Secret | undefined {
    const resolved = resolveWithFile(env, name);
    if (resolved.problem) this.add(resolved.problem);
    return resolved.value === undefined ? undefined : new Secret(resolved.value);
  }
  plain(env: Env, name: string): string | undefined {
    const resolved = resolveWithFile(env, name);
    if (resolved.problem) this.add(resolved.problem);
    return resolved.value;
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
