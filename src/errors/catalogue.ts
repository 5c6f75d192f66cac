/**
 * Every error a user can see, with a stable code and the exit status it maps to.
 * Codes are part of the public contract (scripts and alerts match on them): never renumber,
 * only add. Messages must say what to do and must never contain secret values.
 */
export const EXIT = {
  ok: 0,
  failure: 1,
  config: 2,
  usage: 64,
  notFound: 3,
  integrity: 4,
  key: 5,
  unavailable: 6,
  conflict: 7,
  bug: 70,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

interface CatalogueEntry {
  readonly exitCode: ExitCode;
  readonly summary: string;
}

export const ERRORS = {
  PMS_ERR_CONFIG: { exitCode: EXIT.config, summary: 'configuration is invalid' },
  PMS_ERR_USAGE: { exitCode: EXIT.usage, summary: 'command-line usage is invalid' },
  PMS_ERR_DB_UNAVAILABLE: { exitCode: EXIT.unavailable, summary: 'the PostgreSQL server cannot be reached' },
  PMS_ERR_DB_QUERY: { exitCode: EXIT.failure, summary: 'a PostgreSQL statement failed' },
  PMS_ERR_TOOL_MISSING: { exitCode: EXIT.config, summary: 'a required program is not installed' },
  PMS_ERR_TOOL_FAILED: { exitCode: EXIT.failure, summary: 'a helper program exited with an error' },
  PMS_ERR_REPO_UNAVAILABLE: { exitCode: EXIT.unavailable, summary: 'the backup repository cannot be reached' },
  PMS_ERR_REPO_ACCESS: { exitCode: EXIT.unavailable, summary: 'the backup repository refused the request' },
  PMS_ERR_NOT_FOUND: { exitCode: EXIT.notFound, summary: 'the requested backup or object does not exist' },
  PMS_ERR_INCOMPLETE: { exitCode: EXIT.notFound, summary: 'the backup is incomplete and cannot be restored' },
  PMS_ERR_MANIFEST: { exitCode: EXIT.integrity, summary: 'a backup manifest is unreadable or invalid' },
  PMS_ERR_INTEGRITY: { exitCode: EXIT.integrity, summary: 'backup data failed an integrity check' },
  PMS_ERR_KEY: { exitCode: EXIT.key, summary: 'an encryption key is missing, wrong or unusable' },
  PMS_ERR_KEY_EXPIRED: { exitCode: EXIT.key, summary: 'an encryption key has expired' },
  PMS_ERR_TARGET_EXISTS: { exitCode: EXIT.conflict, summary: 'the restore target already exists' },
  PMS_ERR_LOCKED: { exitCode: EXIT.conflict, summary: 'another operation holds the repository lock' },
  PMS_ERR_ABORTED: { exitCode: EXIT.failure, summary: 'the operation was interrupted' },
  PMS_ERR_INTERNAL: { exitCode: EXIT.bug, summary: 'an unexpected internal error (a bug)' },
  PMS_ERR_SCHEMA: { exitCode: EXIT.config, summary: 'the telemetry schema is missing, outdated or was altered: run pms-telemetry migrate' },
  PMS_ERR_ALREADY_EXISTS: { exitCode: EXIT.conflict, summary: 'the device or reader is already registered' },
  PMS_ERR_WAL_CONFLICT: { exitCode: EXIT.conflict, summary: 'a WAL file of that name is already archived with different content' },
  PMS_ERR_SYSTEM_MISMATCH: { exitCode: EXIT.integrity, summary: 'the WAL or repository belongs to a different PostgreSQL system' },
  PMS_ERR_UNTRUSTED: {
    exitCode: EXIT.integrity,
    summary: 'an object in the repository is unsigned, signed by a key not in BACKUP_TRUSTED_SIGNERS_FILE, or its signature is bad',
  },
  PMS_ERR_WAL_TIMEOUT: { exitCode: EXIT.unavailable, summary: 'WAL a base backup needs was not archived in time' },
  PMS_ERR_STANDBY_PROMOTED: {
    exitCode: EXIT.unavailable,
    summary: 'the standby a base backup read was promoted (a failover) before the backup ended',
  },
  PMS_ERR_PROMOTION: {
    exitCode: EXIT.failure,
    summary: 'a recovered server was asked to promote at the end of the archive and did not',
  },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof ERRORS;

export interface PmsErrorOptions {
  readonly cause?: unknown;
  /** Extra structured facts for --json output and logs; never secrets. */
  readonly details?: Readonly<Record<string, unknown>>;
}

export class PmsError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, options: PmsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PmsError';
    this.code = code;
    this.exitCode = ERRORS[code].exitCode;
    this.details = options.details;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

export function isPmsError(value: unknown, code?: ErrorCode): value is PmsError {
  return value instanceof PmsError && (code === undefined || value.code === code);
}

/** Text for --help: every code with its exit status, and where each is explained. */
export function describeExitCodes(): string {
  const lines = Object.entries(ERRORS).map(
    ([code, entry]) => `  ${String(entry.exitCode).padStart(3)}  ${code.padEnd(24)} ${entry.summary}`,
  );
  return ['Exit codes:', '    0  success', ...lines, 'What each code means and what to do: docs/errors.md'].join('\n');
}
