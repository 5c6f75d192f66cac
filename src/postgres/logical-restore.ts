import type { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PostgresConfig } from '../config/postgres-config.js';
import { PmsError } from '../errors/catalogue.js';
import { startTool } from '../process/tool-process.js';
import { findPgProgram } from './binaries.js';
import { startLibpqTool } from './libpq-tool.js';
import { ScriptObjects } from './script-objects.js';

export interface RestoreProcessOptions {
  /** Restore into this database. */
  readonly database: string;
  /** Skip ownership and grants (restoring onto a server without the original roles). */
  readonly noOwner?: boolean;
  /** Only objects in these schemas. */
  readonly schemas?: readonly string[];
  /** Only these tables (by name; combine with one schema for schema-qualified selection). */
  readonly tables?: readonly string[];
  readonly section?: 'schema-only' | 'data-only';
  /** Rewrites the script on its way to the server (e.g. keeps one patient's COPY rows). */
  readonly rowFilter?: Transform;
  readonly signal?: AbortSignal;
}

export interface RestoreProcess {
  /** Where the custom-format archive is written. */
  readonly input: Writable;
  /** Resolves when everything was restored; rejects with a reason that quotes no data. */
  readonly done: Promise<void>;
}

/**
 * Restores a custom-format archive into `database`, stopping at the first error. pg_restore only
 * turns the archive into SQL (it connects nowhere); psql runs it. That split is what keeps
 * patient data out of errors: pg_restore prints the server's whole message (DETAIL "Failing row
 * contains (…)", CONTEXT with the COPY line, "Command was: …") and libpq gives it no setting to
 * print less, while psql with VERBOSITY=sqlstate prints only "psql:<stdin>:LINE: ERROR:  23505".
 * The line names the archive entry (script-objects.ts), so the error reads
 * "SQLSTATE 23505 in TABLE DATA telemetry.vitals" and nothing else reaches logs or records.
 */
export function startRestore(config: PostgresConfig, options: RestoreProcessOptions): RestoreProcess {
  const args = ['--exit-on-error', '--file', '-'];
  if (options.noOwner) args.push('--no-owner', '--no-privileges');
  if (options.section) args.push(`--${options.section}`);
  for (const schema of options.schemas ?? []) args.push('--schema', schema);
  for (const table of options.tables ?? []) args.push('--table', table);
  const signal = options.signal ? { signal: options.signal } : {};
  const script = startTool(findPgProgram('pg_restore'), args, { stdin: 'pipe', ...signal });
  const psql = startLibpqTool(
    findPgProgram('psql'),
    [
      '--no-psqlrc',
      '--quiet',
      '--no-password',
      '--set',
      'ON_ERROR_STOP=1',
      '--set',
      'VERBOSITY=sqlstate',
      '--set',
      'SHOW_CONTEXT=never',
      '--dbname',
      options.database,
      '--file',
      '-',
    ],
    config,
    { database: options.database, stdin: 'pipe', stdout: 'ignore', ...signal },
  );
  const objects = new ScriptObjects();
  const stages = [script.child.stdout!, ...(options.rowFilter ? [options.rowFilter] : []), objects, psql.child.stdin!] as const;
  const piped = pipeline(stages);
  const done = (async () => {
    const [converted, carried, executed] = await Promise.allSettled([script.done, piped, psql.done]);
    // psql first: when it stops, pg_restore's write fails too, and that is not the cause.
    if (executed.status === 'rejected') throw restoreFailure(executed.reason, psql.stderr(), objects);
    if (converted.status === 'rejected') throw converted.reason;
    if (carried.status === 'rejected') throw carried.reason;
  })();
  done.catch(() => undefined);
  return { input: script.child.stdin!, done };
}

const SQLSTATE_LINE = /^psql:<stdin>:(\d+): (?:ERROR|FATAL|PANIC):\s+([0-9A-Z]{5})\s*$/m;
const CONNECTION_LINE = /^psql: error: (connection to server .*)$/m;
/** The further servers libpq tried (a POSTGRES_HOST list), one line each after the first. */
const FURTHER_SERVER_LINE = /^(connection to server .*)$/gm;

/**
 * psql's failure as the SQLSTATE and the archive entry, or its connection error (which names
 * the server, never data); any other text of psql's is withheld, because it may quote a row.
 */
export function restoreFailure(cause: unknown, stderr: string, objects: Pick<ScriptObjects, 'objectAt'>): PmsError {
  if (cause instanceof PmsError && cause.code !== 'PMS_ERR_TOOL_FAILED') return cause; // aborted, missing
  const exitCode = cause instanceof PmsError ? cause.details?.['exitCode'] : undefined;
  const failed = SQLSTATE_LINE.exec(stderr);
  if (failed) {
    const line = Number(failed[1]);
    const sqlstate = failed[2] as string;
    const object = objects.objectAt(line);
    return new PmsError(
      'PMS_ERR_TOOL_FAILED',
      `pg_restore: SQLSTATE ${sqlstate} in ${object ?? 'the script preamble'} (line ${line} of the restore script; the server's message is not kept because it can quote row values)`,
      { details: { tool: 'psql', exitCode, sqlstate, ...(object ? { object } : {}) } },
    );
  }
  const connection = CONNECTION_LINE.exec(stderr);
  if (connection) {
    // psql never connected, so it ran no line of the script: what follows is libpq's, naming
    // each further server it tried and why it gave up there.
    const further = [...stderr.slice(connection.index + connection[0].length).matchAll(FURTHER_SERVER_LINE)].map((m) => m[1]);
    return new PmsError('PMS_ERR_TOOL_FAILED', `pg_restore: psql could not connect: ${[connection[1], ...further].join('; ')}`, {
      details: { tool: 'psql', exitCode },
    });
  }
  return new PmsError(
    'PMS_ERR_TOOL_FAILED',
    `pg_restore: psql exited with status ${String(exitCode ?? 'unknown')} (its output is not kept because it can quote row values)`,
    { details: { tool: 'psql', exitCode } },
  );
}
