import type { PostgresConfig } from '../config/postgres-config.js';
import { type ToolProcess, startTool } from '../process/tool-process.js';
import { findPgProgram } from './binaries.js';
import { libpqEnv } from './connection-options.js';

export interface PgRestoreOptions {
  readonly database: string;
  /** Skip ownership and grants (restoring onto a server without the original roles). */
  readonly noOwner?: boolean;
  /** Only these tables (schema-qualified), data and definition. */
  readonly tables?: readonly { schema: string; name: string }[];
  readonly signal?: AbortSignal;
}

/** `pg_restore` reading a custom-format archive on stdin; stops at the first error. */
export function startPgRestore(config: PostgresConfig, options: PgRestoreOptions): ToolProcess {
  const args = ['--exit-on-error', '--no-password', '--dbname', options.database];
  if (options.noOwner) args.push('--no-owner', '--no-privileges');
  for (const table of options.tables ?? []) args.push('--schema', table.schema, '--table', table.name);
  return startTool(findPgProgram('pg_restore'), args, {
    env: libpqEnv(config, options.database),
    stdin: 'pipe',
    ...(options.signal ? { signal: options.signal } : {}),
  });
}
