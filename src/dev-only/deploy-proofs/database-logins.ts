import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { findPgProgram } from '../../postgres/binaries.js';
import { runTool } from '../../process/tool-process.js';
import type { Manifest } from './manifest.js';
import { findPod, materialiseContainer } from './workload-environment.js';

export interface DatabaseLogin {
  readonly user: string;
  readonly password: string;
}

let materialised = 0;

/**
 * The login one rendered container connects with, read the way the container reads it: each
 * variable is either the value itself or (ending in _FILE) the path of a mounted Secret file.
 */
export function loginOf(
  objects: readonly Manifest[],
  owner: string,
  container: string,
  variables: { readonly user: string; readonly password: string },
  root: string,
): DatabaseLogin {
  materialised += 1;
  const c = materialiseContainer(objects, findPod(objects, owner), container, { root: join(root, `login-${materialised}`) });
  const read = (name: string): string => {
    const value = c.env[name];
    if (value === undefined) throw new Error(`${owner} container ${container} does not set ${name}`);
    return name.endsWith('_FILE') ? readFileSync(value, 'utf8').trim() : value;
  };
  return { user: read(variables.user), password: read(variables.password) };
}

export interface PsqlTarget {
  readonly port: number;
  /** The CA that signed the server's certificate. */
  readonly caFile: string;
}

export interface PsqlOptions {
  readonly database?: string;
  /** A physical replication (walsender) connection, as base-backup opens. */
  readonly replication?: boolean;
  readonly sslmode?: 'disable' | 'require' | 'verify-full';
  /** The address connected to (the certificate names localhost, so verify-full checks it). */
  readonly address?: string;
}

/** The libpq environment for one login; the password stays out of argv. */
export function libpqEnvFor(target: PsqlTarget, login: DatabaseLogin, options: PsqlOptions = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'],
    PGHOST: 'localhost',
    PGHOSTADDR: options.address ?? '127.0.0.1',
    PGPORT: String(target.port),
    PGUSER: login.user,
    PGPASSWORD: login.password,
    PGDATABASE: options.database ?? 'patient_telemetry',
    PGSSLMODE: options.sslmode ?? 'verify-full',
    PGSSLROOTCERT: target.caFile,
    PGCONNECT_TIMEOUT: '10',
  };
}

/**
 * psql over TCP as one login. Errors carry the server's message with its SQLSTATE in front
 * (VERBOSITY verbose: "ERROR:  42501: permission denied ..."), so tests match codes, not prose.
 */
export async function psqlAs(target: PsqlTarget, login: DatabaseLogin, sql: string, options: PsqlOptions = {}): Promise<string> {
  const conninfo = `dbname=${options.database ?? 'patient_telemetry'}${options.replication ? ' replication=true' : ''}`;
  const { stdout } = await runTool(
    findPgProgram('psql'),
    ['-X', '-qAt', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-d', conninfo, '-c', sql],
    { env: libpqEnvFor(target, login, options) },
  );
  return stdout.trim();
}
