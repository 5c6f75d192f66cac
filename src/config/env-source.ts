import { readFileSync } from 'node:fs';

export type Env = Readonly<Record<string, string | undefined>>;

export interface ResolvedValue {
  readonly value: string | undefined;
  readonly problem?: string;
}

/**
 * Reads NAME or NAME_FILE (Kubernetes secret mounts, the postgres image convention).
 * Setting both is ambiguous and reported rather than guessed. One trailing newline is
 * stripped because `kubectl create secret --from-file` keeps the file's newline.
 */
export function resolveWithFile(env: Env, name: string): ResolvedValue {
  const direct = env[name];
  const filePath = env[`${name}_FILE`];
  if (direct !== undefined && direct !== '' && filePath !== undefined && filePath !== '') {
    return { value: undefined, problem: `${name} and ${name}_FILE are both set; set only one` };
  }
  if (filePath !== undefined && filePath !== '') {
    try {
      return { value: readFileSync(filePath, 'utf8').replace(/\r?\n$/, '') };
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      return { value: undefined, problem: `${name}_FILE: cannot read ${filePath} (${reason})` };
    }
  }
  return { value: direct === '' ? undefined : direct };
}
