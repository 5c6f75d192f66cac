import { EXIT, PmsError, isPmsError } from '../errors/catalogue.js';

export interface OutputOptions {
  readonly json?: boolean;
  /** Overrides the catalogue's exit status (wal-fetch's contract with PostgreSQL). */
  readonly exitCode?: number;
}

/**
 * The one place an error becomes an exit (changesets' ExitError boundary). A PmsError is an
 * expected failure: print its message (or JSON) and exit with its code. Anything else is a bug
 * and says so, with the stack, exit 70.
 */
export function reportAndExit(error: unknown, options: OutputOptions = {}): never {
  const pms = toPmsError(error);
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: pms.toJSON() })}\n`);
  }
  const prefix = pms.code === 'PMS_ERR_INTERNAL' ? 'internal error (please report this bug)' : 'error';
  process.stderr.write(`${prefix} ${pms.code}: ${pms.message}\n`);
  if (pms.code === 'PMS_ERR_INTERNAL' && pms.cause instanceof Error && pms.cause.stack) {
    process.stderr.write(`${pms.cause.stack}\n`);
  }
  process.exit(options.exitCode ?? pms.exitCode);
}

export function toPmsError(error: unknown): PmsError {
  if (isPmsError(error)) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'commander.help' || code === 'commander.helpDisplayed' || code === 'commander.version') {
    process.exit(EXIT.ok);
  }
  if (typeof code === 'string' && code.startsWith('commander.')) {
    return new PmsError('PMS_ERR_USAGE', (error as Error).message.replace(/^error: /, ''));
  }
  return new PmsError('PMS_ERR_INTERNAL', error instanceof Error ? error.message : String(error), { cause: error });
}

/** Wraps a command action: runs it, then exits 0 or through the boundary. */
export function action<A extends unknown[]>(run: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const opts = args.find((a): a is { json?: boolean } => typeof a === 'object' && a !== null && 'json' in a);
    // A library promise nobody awaits yet (openpgp's signer reading a source that a refused base
    // backup errored, seen under heavy load) must still end as the typed error, in the same
    // format and with the same exit status, not as Node's crash dump with exit 1.
    const lastResort = (reason: unknown): void => reportAndExit(reason, { json: opts?.json === true });
    process.on('unhandledRejection', lastResort);
    try {
      const code = await run(...args);
      process.exitCode = code ?? EXIT.ok;
    } catch (error) {
      reportAndExit(error, { json: opts?.json === true });
    } finally {
      process.off('unhandledRejection', lastResort);
    }
  };
}
