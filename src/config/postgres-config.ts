import type { Problems } from './problems.js';
import type { Secret } from './secret.js';
import type { SettingReader } from './setting-reader.js';
import type { SslMode } from './setting-schemas.js';

export type { SslMode } from './setting-schemas.js';

export interface PostgresConfig {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string | undefined;
  readonly password: Secret | undefined;
  readonly sslmode: SslMode;
  readonly sslrootcert: string | undefined;
}

/** The problem when a verifying sslmode has no CA to verify the server with. */
export function missingRootCert(sslmode: SslMode): string {
  return `POSTGRES_SSLMODE=${sslmode} needs POSTGRES_SSLROOTCERT: set it to the CA certificate file that signed the server's certificate (or, accepting an insecure connection, name a weaker POSTGRES_SSLMODE explicitly)`;
}

/**
 * The seed's POSTGRES_* variables; shared by pms-backup and pms-telemetry. `connects`: the command
 * talks to the server, so the default verify-full must have its CA now rather than fail at the
 * first connection; a command that never connects (list, wal-push) is not refused for it, unless
 * POSTGRES_SSLMODE was set explicitly. A Unix-socket host needs no TLS and so no CA.
 */
export function parsePostgres(settings: SettingReader, p: Problems, options: { readonly connects?: boolean } = {}): PostgresConfig {
  const host = settings.get('POSTGRES_HOST');
  const before = p.list.length;
  const sslmode = settings.get('POSTGRES_SSLMODE');
  // An invalid POSTGRES_SSLMODE is one problem; the default it falls back to is not another.
  const valid = p.list.length === before;
  const sslrootcert = settings.get('POSTGRES_SSLROOTCERT');
  const verifies = sslmode === 'verify-full' || sslmode === 'verify-ca';
  const checked = valid && (options.connects === true || settings.given('POSTGRES_SSLMODE'));
  if (verifies && checked && sslrootcert === undefined && !host.startsWith('/')) p.add(missingRootCert(sslmode));
  return {
    host,
    port: settings.get('POSTGRES_PORT'),
    database: settings.get('POSTGRES_DB'),
    user: settings.get('POSTGRES_USER'),
    password: settings.get('POSTGRES_PASSWORD'),
    sslmode,
    sslrootcert,
  };
}
