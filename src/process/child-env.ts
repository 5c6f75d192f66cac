/**
 * The environment every helper program starts from. pms-backup's own environment holds the
 * repository credentials, the path of the private key and its passphrase: none of that is any
 * child's business, and a child (pg_restore feeding a throwaway server, the server itself) may
 * run code from a backup. So children get an allowlist, never a copy of process.env:
 *
 * - PATH: programs find each other (pg_ctl starts postgres, tar may run zstd).
 * - LANG, LANGUAGE, LC_*: messages and collation as the operator set them.
 * - TZ: timestamps in logs.
 * - TMPDIR: where sort/tar/psql put temporary files when they need to.
 *
 * Not HOME (libpq would find a ~/.pgpass there; passwords reach libpq explicitly), nothing
 * PG* (connection facts are set per call by postgres/connection-options.ts), nothing NODE_*.
 */
const ALLOWED = new Set(['PATH', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR']);

function allowed(name: string): boolean {
  return ALLOWED.has(name) || name.startsWith('LC_');
}

/** The allowlisted part of `from` (pms-backup's own environment by default), plus `extra`. */
export function childEnv(
  extra: Readonly<Record<string, string | undefined>> = {},
  from: Readonly<Record<string, string | undefined>> = process.env,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(from)) if (value !== undefined && allowed(name)) env[name] = value;
  for (const [name, value] of Object.entries(extra)) if (value !== undefined) env[name] = value;
  return env;
}
