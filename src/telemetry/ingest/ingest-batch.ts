import type { AuthenticatedDevice } from '../devices/device-registry.js';
import { type Rejection, type ValidReading, validateReading } from '../validation/reading-validator.js';
import type { QuarantineItem, ReadingStore } from './reading-store.js';

export type EntryOutcome =
  /** `version`: the version stored (1 for a new reading id), or the stored version a duplicate repeats. */
  | { readonly status: 'accepted' | 'duplicate'; readonly readingId: string; readonly version: number; readonly withdrawn?: boolean }
  /** Valid, but not stored because its atomic batch had a rejected entry. */
  | { readonly status: 'not-stored'; readonly readingId: string }
  | { readonly status: 'rejected'; readonly rejection: Rejection };

export interface BatchOutcome {
  readonly accepted: number;
  readonly duplicates: number;
  readonly rejected: readonly { index: number; readingId: string | null; reason: string; detail: string }[];
  /** One entry per input, in order (the FHIR batch-response needs per-entry status). */
  readonly entries: readonly EntryOutcome[];
}

/**
 * A reading already turned away before validation (e.g. a FHIR entry that is not an Observation,
 * or bytes that are not JSON). A class, not a shape: a device's reading that happens to have a
 * `preRejected` field is data to validate, never a rejection it chose for itself.
 */
export class PreRejected {
  constructor(
    readonly rejection: Rejection,
    /** The parsed entry, for the quarantine's jsonb payload. */
    readonly payload: unknown,
    /** The bytes as received, when they could not be parsed or stored as jsonb. */
    readonly raw?: Buffer,
  ) {}
}

/**
 * Validates every reading of a batch and stores the valid ones and the quarantined ones
 * together. `atomic` (FHIR transactions) stores no valid reading when any is rejected; the
 * rejected ones are still quarantined.
 */
export async function ingestBatch(
  store: ReadingStore,
  device: AuthenticatedDevice,
  source: 'v1' | 'fhir',
  inputs: readonly unknown[],
  options: { nowMs: number; atomic?: boolean },
): Promise<BatchOutcome> {
  const valid: ValidReading[] = [];
  const validIndex: number[] = [];
  const validPayloads: unknown[] = [];
  const quarantine: QuarantineItem[] = [];
  const entries: (EntryOutcome | undefined)[] = new Array(inputs.length);
  const rejected: { index: number; readingId: string | null; reason: string; detail: string }[] = [];
  const context = { nowMs: options.nowMs, patientNhsNumber: device.patientNhsNumber };
  inputs.forEach((input, index) => {
    const result = input instanceof PreRejected ? ({ ok: false, rejection: input.rejection } as const) : validateReading(input, context);
    if (result.ok) {
      valid.push(result.reading);
      validIndex.push(index);
      validPayloads.push(input);
      return;
    }
    quarantine.push(
      input instanceof PreRejected
        ? { rejection: result.rejection, payload: input.payload, ...(input.raw ? { raw: input.raw } : {}) }
        : { rejection: result.rejection, payload: input },
    );
    entries[index] = { status: 'rejected', rejection: result.rejection };
    rejected.push({ index, readingId: result.rejection.readingId, reason: result.rejection.reason, detail: result.rejection.detail });
  });
  const toStore = options.atomic && rejected.length > 0 ? [] : valid;
  const result = await store.store(device, source, toStore, quarantine, { payloads: validPayloads, atomic: options.atomic ?? false });
  if (toStore.length === 0 && valid.length > 0) {
    // Atomic batch with a rejection: nothing valid was stored and the caller reports failure.
    validIndex.forEach((index, i) => {
      entries[index] = { status: 'not-stored', readingId: valid[i]?.readingId ?? '' };
    });
    return { accepted: 0, duplicates: 0, rejected, entries: entries as EntryOutcome[] };
  }
  validIndex.forEach((index, i) => {
    const readingId = valid[i]?.readingId ?? '';
    const outcome = result.outcomes[i];
    if (outcome?.kind === 'stored') {
      entries[index] = { status: 'accepted', readingId, version: outcome.version, withdrawn: valid[i]?.status === 'entered-in-error' };
    } else if (outcome?.kind === 'duplicate') entries[index] = { status: 'duplicate', readingId, version: outcome.version };
    else if (outcome?.kind === 'conflict') {
      entries[index] = { status: 'rejected', rejection: outcome.rejection };
      rejected.push({ index, readingId, reason: outcome.rejection.reason, detail: outcome.rejection.detail });
    } else entries[index] = { status: 'not-stored', readingId };
  });
  rejected.sort((a, b) => a.index - b.index);
  return { accepted: result.accepted, duplicates: result.duplicates, rejected, entries: entries as EntryOutcome[] };
}
