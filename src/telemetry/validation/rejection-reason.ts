/**
 * Why a reading was quarantined. These strings are part of the API contract (devices and the
 * quarantine review tooling match on them): never rename, only add.
 */
export const REJECTION_REASONS = [
  'invalid-reading',
  'invalid-reading-id',
  'unknown-field',
  'unknown-code',
  'wrong-unit',
  'invalid-value',
  'implausible-value',
  'invalid-components',
  'invalid-measured-at',
  'measured-in-future',
  'measured-too-old',
  'patient-mismatch',
  'invalid-status',
  // The reading id is stored with other content and this resend does not say it corrects it.
  'reading-conflict',
  // Turned away before parsing (src/telemetry/ingest/split-batch.ts); quarantined as raw bytes.
  'reading-too-large',
  'reading-too-deep',
  'invalid-utf8',
  'malformed-reading',
  'invalid-character',
] as const;

export type RejectionReason = (typeof REJECTION_REASONS)[number];
