import { z } from 'zod';
import type { Env } from './env-source.js';
import { type Problems, portSchema } from './problems.js';
import type { Secret } from './secret.js';

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

export interface PostgresConfig {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string | undefined;
  readonly password: Secret | undefined;
  readonly sslmode: SslMode;
  readonly sslrootcert: string | undefined;
}

const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;

/** The seed's POSTGRES_* variables; shared by pms-backup and pms-telemetry. */
export function parsePostgres(env: Env, p: Problems): PostgresConfig {
  const sslmode = p.parse(env, 'POSTGRES_SSLMODE', z.enum(SSL_MODES), 'prefer', `use one of ${SSL_MODES.join(', ')}`);
  const sslrootcert = env['POSTGRES_SSLROOTCERT'] || undefined;
  if ((sslmode === 'verify-full' || sslmode === 'verify-ca') && sslrootcert === undefined) {
    p.add(`POSTGRES_SSLMODE=${sslmode} needs POSTGRES_SSLROOTCERT (the CA certificate file)`);
  }
  return {
    host: env['POSTGRES_HOST'] || 'localhost',
    port: p.parse(env, 'POSTGRES_PORT', portSchema, 5432, 'use a TCP port number 1-65535'),
    database: env['POSTGRES_DB'] || 'patient_telemetry',
    user: p.plain(env, 'POSTGRES_USER'),
    password: p.secret(env, 'POSTGRES_PASSWORD'),
    sslmode,
    sslrootcert,
  };
}
