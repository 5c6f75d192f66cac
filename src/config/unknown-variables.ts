import type { Env } from './env-source.js';
import type { Problems } from './problems.js';
import { type Program, acceptedNames } from './settings.js';

/** Levenshtein distance: the edits (insert, delete, substitute one character) turning a into b. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * The accepted name nearest to `name`, if it is near enough to be the intended one: a few
 * slips (a dropped letter, a swapped pair) yes, a different variable with a shared prefix no.
 */
export function suggestName(name: string, accepted: Iterable<string> = acceptedNames()): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const candidate of accepted) {
    const distance = editDistance(name, candidate);
    if (best === undefined || distance < best.distance) best = { name: candidate, distance };
  }
  if (best === undefined) return undefined;
  return best.distance <= Math.max(2, Math.floor(name.length / 5)) ? best.name : undefined;
}

/**
 * Reports every variable with one of `prefixes` that is not a setting (of either program, so
 * both can share an environment) nor the NAME_FILE of one: a typo must not silently leave a
 * default in place. Values are never shown; the variable may hold a secret.
 */
export function refuseUnknownVariables(env: Env, problems: Problems, program: Program, prefixes: readonly string[]): void {
  const accepted = acceptedNames();
  for (const name of Object.keys(env).sort()) {
    if (!prefixes.some((prefix) => name.startsWith(prefix)) || accepted.has(name)) continue;
    const suggestion = suggestName(name, accepted);
    problems.add(
      `${name} is not a ${program} setting: ${suggestion ? `did you mean ${suggestion}?` : 'check the spelling'} (${program} --help lists them)`,
    );
  }
}
