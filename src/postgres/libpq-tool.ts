import type { PostgresConfig } from '../config/postgres-config.js';
import { type ToolOptions, type ToolProcess, startTool } from '../process/tool-process.js';
import { libpqEnv } from './connection-options.js';
import { createPassfile } from './libpq-passfile.js';
import type { SessionTarget } from './session-target.js';

/**
 * Starts a libpq program (pg_dump, pg_restore, psql) against `config`: the connection facts in
 * its environment, the password in a PGPASSFILE made for it alone and deleted when it exits,
 * whether it succeeded, failed or was stopped.
 */
export function startLibpqTool(
  program: string,
  args: readonly string[],
  config: PostgresConfig,
  options: Omit<ToolOptions, 'env' | 'runAs'> & { readonly database?: string; readonly target?: SessionTarget },
): ToolProcess {
  const { database, target, ...toolOptions } = options;
  const passfile = createPassfile(config);
  const env = { ...libpqEnv(config, database, target), ...(passfile ? { PGPASSFILE: passfile.path } : {}) };
  let tool: ToolProcess;
  try {
    tool = startTool(program, args, { ...toolOptions, env });
  } catch (error) {
    passfile?.remove();
    throw error;
  }
  if (passfile) tool.done.then(passfile.remove, passfile.remove);
  return tool;
}
