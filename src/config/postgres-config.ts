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

/** The seed's POSTGRES_* variables; shared by pms-backup and pms-telemetry. */
export function parsePostgres(settings: SettingReader, p: Problems): PostgresConfig {
  const sslmode = settings.get('POSTGRES_SSLMODE');
  const sslrootcert = settings.get('POSTGRES_SSLROOTCERT');
  if ((sslmode === 'verify-full' || sslmode === 'verify-ca') && sslrootcert === undefined) {
    p.add(`POSTGRES_SSLMODE=${sslmode} needs POSTGRES_SSLROOTCERT (the CA certificate file)`);
  }
  return {
    host: settings.get('POSTGRES_HOST'),
    port: settings.get('POSTGRES_PORT'),
    database: settings.get('POSTGRES_DB'),
    user: settings.get('POSTGRES_USER'),
    password: settings.get('POSTGRES_PASSWORD'),
    sslmode,
    sslrootcert,
  };
}
