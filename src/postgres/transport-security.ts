import type { PostgresConfig } from '../config/postgres-config.js';
import type { SslMode } from '../config/setting-schemas.js';

/** A host starting with '/' is a Unix-socket directory: TLS does not apply, the kernel carries the bytes. */
export function isUnixSocketHost(host: string): boolean {
  return host.startsWith('/');
}

/** What each mode weaker than verify-ca/verify-full leaves open (libpq's definitions). */
const WEAKNESS: Partial<Record<SslMode, string>> = {
  disable: 'no TLS at all',
  allow: 'plain text unless the server insists on TLS, and the server is never verified',
  prefer: 'plain text whenever the server offers no TLS, and the server is never verified',
  require: 'TLS without checking whose certificate it is',
};

/**
 * Why a connection made with `config` is insecure, or undefined when it is verified TLS or a Unix
 * socket. The default is verify-full, so a weaker mode is always something an operator named.
 */
export function insecureTransport(config: PostgresConfig): string | undefined {
  if (isUnixSocketHost(config.host)) return undefined;
  const weakness = WEAKNESS[config.sslmode];
  if (weakness === undefined) return undefined;
  return (
    `insecure connection to PostgreSQL at ${config.host}:${config.port}: POSTGRES_SSLMODE=${config.sslmode} means ${weakness}, ` +
    'so the password and patient data can be read or changed on the way; set POSTGRES_SSLMODE=verify-full and POSTGRES_SSLROOTCERT'
  );
}

// One warning per command, not per connection (a restore opens several). A CLI process runs one
// command, which installs its logger here; until then (pms-telemetry) the warning goes to stderr.
let sink: (message: string) => void = (message) => process.stderr.write(`warning: ${message}\n`);
let warned = false;

/** Where the insecure-connection warning goes for the command starting now (and re-arms it). */
export function reportInsecureTransportTo(report: (message: string) => void): void {
  sink = report;
  warned = false;
}

/** Called where a connection is configured: warns once per command if it is insecure. */
export function noteTransport(config: PostgresConfig): void {
  if (warned) return;
  const problem = insecureTransport(config);
  if (problem === undefined) return;
  warned = true;
  sink(problem);
}
