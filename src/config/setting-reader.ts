import type { z } from 'zod';
import { type Env, resolveWithFile } from './env-source.js';
import type { Problems } from './problems.js';
import { Secret } from './secret.js';
import type { Need, SETTINGS, SettingName, SettingSpec } from './settings.js';
import { settingNames, settingSpec } from './settings.js';

type Spec<K extends SettingName> = (typeof SETTINGS)[K];
type Parsed<K extends SettingName> = z.output<Spec<K>['schema']>;
/** What reading a setting gives: a Secret for secrets, the schema's output otherwise. */
export type SettingValue<K extends SettingName> = Spec<K> extends { readonly secret: true } ? Secret : Parsed<K>;
/** A setting with a default in the table is always present; any other may be unset. */
export type SettingRead<K extends SettingName> =
  Spec<K> extends { readonly default: string } ? SettingValue<K> : SettingValue<K> | undefined;

export interface ReadOptions {
  /** Used when the variable is unset, in place of the table's default (e.g. s3://$S3_BUCKET). */
  readonly derivedDefault?: string | undefined;
  /** A value given elsewhere (a command-line option) that replaces the variable, named by `label` in problems. */
  readonly override?: { readonly label: string; readonly value: string };
}

/**
 * Reads settings by their row in the table: NAME_FILE for secrets and file settings, the
 * schema, the default, and a problem (never the value of a secret or file setting) when the
 * value is invalid. Remembers which settings were given, for the per-command needs.
 */
export class SettingReader {
  readonly #env: Env;
  readonly #problems: Problems;
  readonly #given = new Set<SettingName>();

  constructor(env: Env, problems: Problems) {
    this.#env = env;
    this.#problems = problems;
  }

  get<K extends SettingName>(name: K, options: ReadOptions = {}): SettingRead<K> {
    const spec = settingSpec(name);
    let raw: string | undefined;
    if (options.override) raw = options.override.value;
    else if (spec.secret || spec.file) {
      const resolved = resolveWithFile(this.#env, name);
      if (resolved.problem) this.#problems.add(resolved.problem);
      raw = resolved.value;
    } else {
      const value = this.#env[name];
      raw = value === '' ? undefined : value;
    }
    const text = raw ?? options.derivedDefault;
    if (text !== undefined) this.#given.add(name);
    if (text === undefined) return this.#fallback(name, spec);
    const result = spec.schema.safeParse(text);
    if (!result.success) {
      const refined = result.error.issues.find((issue) => issue.code === 'custom' && issue.params?.['hint'] === true)?.message;
      const hint = refined ?? spec.hint ?? 'see pms-backup --help';
      const label = options.override?.label ?? name;
      // A secret or a file setting may hold something private: name it, never echo it.
      const shown = spec.secret || spec.file ? label : `${label}=${JSON.stringify(text)}`;
      this.#problems.add(`${shown} is invalid: ${hint}`);
      return this.#fallback(name, spec);
    }
    return (spec.secret ? new Secret(result.data as string) : result.data) as SettingRead<K>;
  }

  /** Whether the setting was given (or derived from another that was), valid or not. */
  given(name: SettingName): boolean {
    return this.#given.has(name);
  }

  /** Reports every setting required for one of `needs` that was not given. */
  requireFor(needs: Partial<Record<Need, boolean>>): void {
    for (const name of settingNames()) {
      const spec = settingSpec(name);
      if (spec.requiredFor !== undefined && needs[spec.requiredFor] === true && !this.#given.has(name)) {
        this.#problems.add(`${name} is not set: ${spec.missing ?? 'it is required here'}`);
      }
    }
  }

  #fallback<K extends SettingName>(name: K, spec: SettingSpec): SettingRead<K> {
    if (spec.default === undefined) return undefined as SettingRead<K>;
    const parsed = spec.schema.safeParse(spec.default);
    // The table test proves every default parses; this guards an edit that skipped it.
    if (!parsed.success) throw new Error(`settings table: the default of ${name} does not parse`);
    return parsed.data as SettingRead<K>;
  }
}
