import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type PostgresConfig, endpointsOf } from '../config/postgres-config.js';
import { PmsError } from '../errors/catalogue.js';

/** libpq's password-file quoting: a `:` or `\` inside a field is preceded by `\`. */
function field(value: string): string {
  return value.replace(/[\\:]/g, (c) => `\\${c}`);
}

/**
 * The one line of a password file for this connection (hostname:port:database:username:password).
 * Any database: pg_restore and psql connect to the target, pg_dump to the source, all on this
 * server as this user.
 */
export function passfileLine(host: string, port: number, user: string | undefined, password: string): string {
  if (/[\r\n]/.test(password)) {
    throw new PmsError('PMS_ERR_CONFIG', "POSTGRES_PASSWORD contains a line break, which libpq's password file cannot hold");
  }
  return `${field(host)}:${port}:*:${user === undefined ? '*' : field(user)}:${field(password)}\n`;
}

export interface Passfile {
  /** For PGPASSFILE. */
  readonly path: string;
  /** Deletes the file and its directory (idempotent). */
  remove(): void;
}

// Removed when the program they were made for exits; this covers an exit of our own first
// (process.exit on a second signal). Only SIGKILL leaves one behind, 0600 in a 0700 directory.
const live = new Set<string>();
process.once('exit', () => {
  for (const dir of live) rmSync(dir, { recursive: true, force: true });
});

/**
 * The password for one libpq program, in a 0600 file inside a new 0700 directory, so it is in no
 * process's environment or argv (where /proc shows it to the same user, and where it would be
 * inherited by whatever the program starts). Undefined when there is no password to give.
 */
export function createPassfile(config: PostgresConfig): Passfile | undefined {
  if (config.password === undefined) return undefined;
  const password = config.password.reveal();
  // One line per server of a POSTGRES_HOST list: libpq looks the password up by the host it reached.
  const line = endpointsOf(config)
    .map((e) => passfileLine(e.host, e.port, config.user, password))
    .join('');
  const dir = mkdtempSync(join(tmpdir(), 'pms-pgpass-'));
  live.add(dir);
  const path = join(dir, 'pgpass');
  const remove = (): void => {
    rmSync(dir, { recursive: true, force: true });
    live.delete(dir);
  };
  try {
    writeFileSync(path, line, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    remove();
    throw new PmsError('PMS_ERR_INTERNAL', `cannot write a password file in ${dir}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, {
      cause: error,
    });
  }
  return { path, remove };
}
