import { z } from 'zod';
import { PmsError } from '../errors/catalogue.js';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

export const storedObjectSchema = z.strictObject({
  /** Path relative to the repository root (file:// repositories: <root>/<key>). */
  key: z.string().min(1),
  bytes: z.number().int().nonnegative(),
  sha256,
});

export const tableCountSchema = z.strictObject({
  schema: z.string(),
  name: z.string(),
  rows: z.number().int().nonnegative(),
  /** For a partition: its partitioned parent as schema.name (partial restores use it). */
  partitionOf: z.string().optional(),
});

/** Fields every manifest kind carries: timing, sizes at each stage, encryption, stored objects. */
const commonManifestFields = {
  formatVersion: z.literal(1),
  id: z.string().min(1),
  serverVersion: z.string(),
  serverVersionNum: z.number().int(),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime(),
  durationSeconds: z.number().nonnegative(),
  bytes: z.strictObject({
    plain: z.number().int().nonnegative(),
    compressed: z.number().int().nonnegative(),
    stored: z.number().int().nonnegative(),
  }),
  compression: z.strictObject({ algorithm: z.literal('zstd'), level: z.number().int() }),
  encryption: z.strictObject({
    format: z.literal('openpgp'),
    recipients: z.array(z.string().regex(/^[0-9A-F]{40}$/)).min(1),
  }),
  keyFingerprints: z.array(z.string().regex(/^[0-9A-F]{40}$/)).min(1),
  /** The key that signed this backup's objects and manifest (absent in backups made before signing). */
  signedBy: z
    .string()
    .regex(/^[0-9A-F]{40}$/)
    .optional(),
  objects: z.array(storedObjectSchema).min(1),
  host: z.string(),
  createdBy: z.string(),
};

/**
 * The manifest is the commit record of a backup (pgBackRest's habit): it is written last, and a
 * backup without one is incomplete and never restorable. Unknown fields are rejected so a
 * hand-edited or corrupt manifest is noticed rather than half-trusted.
 */
export const logicalManifestSchema = z.strictObject({
  ...commonManifestFields,
  kind: z.literal('logical'),
  database: z.string(),
  pgDumpVersion: z.string(),
  tables: z.array(tableCountSchema),
});

const lsn = z.string().regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/);
const walSegmentName = z.string().regex(/^[0-9A-F]{24}$/);

/**
 * A physical base backup (pg_basebackup tar, no WAL inside). It is complete only once the WAL
 * from startWalSegment to stopWalSegment is archived; the manifest is written after that check.
 */
export const baseManifestSchema = z.strictObject({
  ...commonManifestFields,
  kind: z.literal('base'),
  systemIdentifier: z.string().regex(/^\d+$/),
  timeline: z.number().int().positive(),
  startLsn: lsn,
  stopLsn: lsn,
  startWalSegment: walSegmentName,
  stopWalSegment: walSegmentName,
});

export const manifestSchema = z.discriminatedUnion('kind', [logicalManifestSchema, baseManifestSchema]);

export type LogicalManifest = z.infer<typeof logicalManifestSchema>;
export type BaseManifest = z.infer<typeof baseManifestSchema>;
export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestKind = Manifest['kind'];
export type StoredObject = z.infer<typeof storedObjectSchema>;
export type TableCount = z.infer<typeof tableCountSchema>;

export function parseManifest(raw: Buffer | string, key: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(raw.toString());
  } catch (error) {
    throw new PmsError(
      'PMS_ERR_MANIFEST',
      `manifest ${key} is not valid JSON (${(error as Error).message}): the backup cannot be trusted; restore another backup`,
      { cause: error },
    );
  }
  const result = manifestSchema.safeParse(json);
  if (!result.success) {
    const problems = result.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    throw new PmsError(
      'PMS_ERR_MANIFEST',
      `manifest ${key} is invalid (${problems}): the backup cannot be trusted; restore another backup`,
    );
  }
  return result.data;
}
