import type { PostgresConfig } from '../config/postgres-config.js';
import type { ToolProcess } from '../process/tool-process.js';
import { findPgProgram } from './binaries.js';
import { startLibpqTool } from './libpq-tool.js';

export interface PgRestoreOptions {
  /** Restore into this database; without it pg_restore writes the SQL script to stdout. */
  readonly database?: string;
  /** Skip ownership and grants (restoring onto a server without the original roles). */
  readonly noOwner?: boolean;
  /** Only objects in these schemas. */
  readonly schemas?: readonly string[];
  /** Only these tables (by name; combine with one schema for schema-qualified selection). */
  readonly tables?: readonly string[];
  readonly section?: 'schema-only' | 'data-only';
  readonly signal?: AbortSignal;
}

/** `pg_restore` reading a custom-format archive on stdin; stops at the first error. */
export function startPgRestore(config: PostgresConfig, options: PgRestoreOptions): ToolProcess {
  const args = ['--exit-on-error', '--no-password'];
  if (options.database !== undefined) args.push('--dbname', options.database);
  else args.push('--file', '-');
  if (options.noOwner) args.push('--no-owner', '--no-privileges');
  if (options.section) args.push(`--${options.section}`);
  for (const schema of options.schemas ?? []) args.push('--schema', schema);
  for (const table of options.tables ?? []) args.push('--table', table);
  return startLibpqTool(findPgProgram('pg_restore'), args, config, {
    ...(options.database !== undefined ? { database: options.database } : {}),
    stdin: 'pipe',
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/** `psql` running a SQL script from stdin, stopping at the first error. */
export function startPsqlScript(config: PostgresConfig, database: string, signal?: AbortSignal): ToolProcess {
  return startLibpqTool(findPgProgram('psql'), ['--no-psqlrc', '--quiet', '--set', 'ON_ERROR_STOP=1', '--dbname', database], config, {
    database,
    stdin: 'pipe',
    stdout: 'ignore',
    ...(signal ? { signal } : {}),
  });
}
