import { CORRECTION_STATUSES, OPEN_STATUSES, type ReadingStatus } from '../validation/reading-status.js';

/** What a version of a reading holds, as compared between a resend and what is stored. */
export interface ReadingContent {
  readonly status: ReadingStatus;
  readonly code: string;
  readonly value: number | null;
  readonly unit: string;
  readonly systolic: number | null;
  readonly diastolic: number | null;
  /** The instant in whole microseconds since the epoch, as PostgreSQL stores it (text: exact). */
  readonly measuredAtMicros: string;
  readonly offsetMinutes: number;
}

export interface StoredVersion extends ReadingContent {
  readonly version: number;
}

export type VersionDecision =
  | { readonly kind: 'duplicate'; readonly version: number }
  | { readonly kind: 'new-version'; readonly version: number }
  | { readonly kind: 'conflict'; readonly detail: string };

/**
 * What to do with a reading whose id is already stored (`stored`: every version, any order).
 * Identical to any stored version, status included: a retry, stored nothing (a late retry of
 * version 1 after version 2 must not bring 1 back). Otherwise a new version when the resend says
 * it corrects (amended, corrected, entered-in-error) or the current version is not final yet
 * (preliminary); anything else is a conflict, refused with the reason, never silently dropped.
 */
export function decideVersion(stored: readonly StoredVersion[], incoming: ReadingContent): VersionDecision {
  const same = stored.find((v) => sameContent(v, incoming));
  if (same) return { kind: 'duplicate', version: same.version };
  const current = stored.reduce<StoredVersion | undefined>((a, v) => (a === undefined || v.version > a.version ? v : a), undefined);
  if (current === undefined) return { kind: 'new-version', version: 1 };
  if (CORRECTION_STATUSES.has(incoming.status) || OPEN_STATUSES.has(current.status)) {
    return { kind: 'new-version', version: current.version + 1 };
  }
  return {
    kind: 'conflict',
    detail:
      `this reading id is already stored with other content (version ${current.version}, status ${current.status}) and this one has status ${incoming.status}: ` +
      'a resend must be identical; to change a stored reading send status amended or corrected, to withdraw it entered-in-error',
  };
}

function sameContent(a: ReadingContent, b: ReadingContent): boolean {
  return (
    a.status === b.status &&
    a.code === b.code &&
    a.value === b.value &&
    a.unit === b.unit &&
    a.systolic === b.systolic &&
    a.diastolic === b.diastolic &&
    a.measuredAtMicros === b.measuredAtMicros &&
    a.offsetMinutes === b.offsetMinutes
  );
}
