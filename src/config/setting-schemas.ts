import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';
import { z } from 'zod';

/**
 * The value types the settings table is made of. Each schema reads the raw environment string;
 * a refinement's own message, when it has one, is more precise than the setting's hint and wins.
 */

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const textSchema = z.string();
export const portSchema = z.coerce.number().int().min(1).max(65535);

/** libpq's multi-host form: h1,h2,h3 (names, addresses or Unix-socket directories), none empty. */
export const hostListSchema = z
  .string()
  .transform((value) => value.split(',').map((host) => host.trim()))
  .refine((hosts) => hosts.every((host) => host !== ''), {
    message: 'list hosts as h1,h2,h3 with no empty entry',
    params: { hint: true },
  });

/** One port, or one per host as libpq reads PGPORT (5432,5432,5433); the count is checked against the hosts. */
export const portListSchema = z
  .string()
  .transform((value) => value.split(',').map((port) => Number(port.trim() === '' ? Number.NaN : port.trim())))
  .pipe(z.array(z.number().int().min(1).max(65535)));

export const BACKUP_FROM_STANDBY_MODES = ['no', 'prefer', 'require'] as const;
export type BackupFromStandby = (typeof BACKUP_FROM_STANDBY_MODES)[number];
export const boolSchema = z.stringbool();
export const daysSchema = z.coerce.number().int().min(0).max(36500);
export const positiveSchema = z.coerce.number().positive().max(1e6);
export const intSchema = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const absolutePathSchema = z.string().refine((value) => isAbsolute(value));

export const endpointSchema = z.string().regex(/^https?:\/\/[^\s/]+/);

/** A comma-separated list of full (40 hex digit) key fingerprints, upper-cased. */
export const fingerprintListSchema = z
  .string()
  .transform((value) =>
    value
      .split(',')
      .map((f) => f.replace(/\s+/g, '').toUpperCase())
      .filter((f) => f !== ''),
  )
  .refine((list) => list.length > 0 && list.every((f) => /^[0-9A-F]{40}$/.test(f)));

/** A comma-separated list of http(s) base URLs (each member's Patroni REST API), trailing slashes dropped. */
export const urlListSchema = z
  .string()
  .transform((value) =>
    value
      .split(',')
      .map((u) => u.trim().replace(/\/+$/, ''))
      .filter((u) => u !== ''),
  )
  .refine((list) => list.length > 0 && list.every((u) => /^https?:\/\/[^\s/]+$/.test(u)));

/** A comma-separated list of IP addresses or CIDR blocks (e.g. 10.0.0.0/8, fd00::/8). */
export const cidrListSchema = z
  .string()
  .transform((value) =>
    value
      .split(',')
      .map((c) => c.trim())
      .filter((c) => c !== ''),
  )
  .refine(
    (list) =>
      list.length > 0 &&
      list.every((c) => {
        const [address = '', prefix, ...rest] = c.split('/');
        const family = isIP(address);
        if (family === 0 || rest.length > 0) return false;
        return prefix === undefined || (/^[0-9]{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128));
      }),
  );

export const keyIdSchema = z.string().refine((value) => /^(0x)?[0-9A-Fa-f]{8,40}$/.test(value.replace(/\s+/g, '')));

/** A Prometheus label value that stays stable between runs (see PushgatewayConfig.instance). */
export const instanceSchema = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/);

/**
 * Reports a failure with its own hint, replacing the setting's general one (for a schema that
 * can fail in more than one way). Zod's plain refinements say only "Invalid input", so only
 * issues marked this way are shown.
 */
export function failWithHint(ctx: z.RefinementCtx, hint: string): typeof z.NEVER {
  ctx.addIssue({ code: 'custom', message: hint, params: { hint: true } });
  return z.NEVER;
}

/** Where a repository lives, as its URL says; credentials and region are separate settings. */
export type RepositoryLocation =
  | { readonly kind: 'file'; readonly url: string; readonly root: string }
  | { readonly kind: 's3'; readonly url: string; readonly bucket: string; readonly prefix: string };

export const repositoryUrlSchema = z.string().transform((url, ctx): RepositoryLocation => {
  if (url.startsWith('file://')) {
    let root: string;
    try {
      root = decodeURIComponent(new URL(url).pathname);
    } catch {
      root = '';
    }
    // A repository is a directory of its own, never the root of the file system.
    if (!url.startsWith('file:///') || !isAbsolute(root) || root === '/') {
      return failWithHint(ctx, 'a file repository needs an absolute path, e.g. file:///var/backups/pms');
    }
    return { kind: 'file', url, root: root.replace(/\/+$/, '') };
  }
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!match?.[1]) {
    return failWithHint(ctx, 'use s3://bucket/optional/prefix or file:///absolute/path');
  }
  return { kind: 's3', url, bucket: match[1], prefix: (match[2] ?? '').replace(/^\/+|\/+$/g, '') };
});

/** "never" (keep every partition) or a number of days; readings up to 30 days old are accepted. */
export const telemetryRetentionSchema = z.union([z.literal('never').transform(() => undefined), intSchema(31, 36500)]);
