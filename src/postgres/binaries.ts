import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { PmsError } from '../errors/catalogue.js';

export type PgProgram =
  | 'initdb'
  | 'pg_ctl'
  | 'postgres'
  | 'pg_dump'
  | 'pg_restore'
  | 'psql'
  | 'pg_verifybackup'
  | 'pg_controldata'
  | 'pg_isready';

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds a PostgreSQL program: PG_BIN_DIR first, then the Debian layout for the wanted major
 * version (server programs such as initdb are not on PATH there), then PATH.
 */
export function findPgProgram(program: PgProgram, env: NodeJS.ProcessEnv = process.env, major = 15): string {
  const candidates: string[] = [];
  if (env['PG_BIN_DIR']) candidates.push(join(env['PG_BIN_DIR'], program));
  candidates.push(join(`/usr/lib/postgresql/${major}/bin`, program));
  for (const dir of (env['PATH'] ?? '').split(delimiter)) if (dir) candidates.push(join(dir, program));
  const found = candidates.find(isExecutable);
  if (!found) {
    throw new PmsError(
      'PMS_ERR_TOOL_MISSING',
      `${program} was not found in PG_BIN_DIR, /usr/lib/postgresql/${major}/bin or PATH: install postgresql-${major} or set PG_BIN_DIR`,
    );
  }
  return found;
}
