import { HttpError } from '../api/http-error.js';
import { type EntryOutcome, PreRejected } from '../ingest/ingest-batch.js';
import type { BatchItem, SplitBatch } from '../ingest/split-batch.js';
import type { Rejection } from '../validation/reading-validator.js';

export const LOINC = 'http://loinc.org';
export const UCUM = 'http://unitsofmeasure.org';
export const NHS_NUMBER_SYSTEM = 'https://fhir.nhs.uk/Id/nhs-number';

export interface ParsedBundle {
  readonly type: 'batch' | 'transaction';
  /** Per entry: a reading in the /v1 shape (validated like any other), or an early rejection. */
  readonly readings: readonly (Record<string, unknown> | PreRejected)[];
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Maps a FHIR R4 batch/transaction Bundle of vital-signs Observations to readings. The bundle's
 * shape is checked here (400 when it is not a Bundle); each Observation is translated to the
 * /v1 reading shape and then goes through exactly the same validator, so both APIs share rules.
 * `split` is the body split on `entry` (split-batch.ts): an entry that could not be parsed is
 * rejected alone.
 */
export function parseBundle(split: SplitBatch, maxEntries: number): ParsedBundle {
  const body = split.envelope;
  if (!isObject(body) || body['resourceType'] !== 'Bundle') throw new HttpError('invalid-body', 'the body must be a FHIR Bundle resource');
  const type = body['type'];
  if (type !== 'batch' && type !== 'transaction') throw new HttpError('invalid-body', 'Bundle.type must be batch or transaction');
  const entries = split.items;
  if (!Array.isArray(body['entry']) || entries === undefined || entries.length === 0)
    throw new HttpError('invalid-body', 'Bundle.entry must be a non-empty array');
  if (entries.length > maxEntries) throw new HttpError('invalid-body', `a Bundle may hold at most ${maxEntries} entries`);
  return { type, readings: entries.map(mapItem) };
}

function mapItem(item: BatchItem): Json | PreRejected {
  if (!item.ok) return new PreRejected({ readingId: null, reason: item.reason, detail: item.detail }, null, item.raw);
  return mapEntry(item.value);
}

function mapEntry(entry: unknown): Json | PreRejected {
  const resource = isObject(entry) ? entry['resource'] : undefined;
  const early = (reason: Rejection['reason'], detail: string, readingId: string | null = null): PreRejected =>
    new PreRejected({ readingId, reason, detail }, entry);
  if (!isObject(resource) || resource['resourceType'] !== 'Observation')
    return early('invalid-reading', 'each entry must hold an Observation resource');
  const request = isObject(entry) ? entry['request'] : undefined;
  if (request !== undefined && (!isObject(request) || request['method'] !== 'POST'))
    return early('invalid-reading', 'entry.request.method must be POST');
  const identifiers = resource['identifier'];
  const first = Array.isArray(identifiers) ? identifiers[0] : undefined;
  const readingId = isObject(first) && typeof first['value'] === 'string' ? first['value'] : undefined;
  if (readingId === undefined) return early('invalid-reading-id', 'Observation.identifier[0].value is the reading id and is required');
  // FHIR requires a status; which ones are stored is the validator's rule, shared with /v1.
  if (typeof resource['status'] !== 'string') return early('invalid-status', 'Observation.status is required', readingId);
  const reading: Json = {
    readingId,
    status: resource['status'],
    code: loincCode(resource['code']),
    measuredAt: resource['effectiveDateTime'],
  };
  // A subject naming another patient is refused; the patient always comes from the device.
  const subject = resource['subject'];
  const subjectId = isObject(subject) && isObject(subject['identifier']) ? subject['identifier'] : undefined;
  if (subjectId !== undefined) {
    if (subjectId['system'] !== NHS_NUMBER_SYSTEM)
      return early('patient-mismatch', `Observation.subject.identifier.system must be ${NHS_NUMBER_SYSTEM}`, readingId);
    reading['patientId'] = subjectId['value'];
  }
  const components = resource['component'];
  if (components !== undefined) {
    if (!Array.isArray(components)) return early('invalid-components', 'Observation.component must be an array', readingId);
    const mapped: Json[] = [];
    for (const c of components) {
      const q = isObject(c) ? quantity(c['valueQuantity']) : undefined;
      if (!isObject(c) || q === undefined)
        return early('invalid-components', 'each component needs a code and a UCUM valueQuantity', readingId);
      mapped.push({ code: loincCode(c['code']), value: q.value, unit: q.unit });
    }
    reading['components'] = mapped;
    reading['unit'] = mapped[0]?.['unit'];
  }
  if (resource['valueQuantity'] !== undefined) {
    const q = quantity(resource['valueQuantity']);
    if (q === undefined) return early('invalid-value', 'Observation.valueQuantity must have a value and a UCUM code', readingId);
    reading['value'] = q.value;
    reading['unit'] = q.unit;
  }
  return reading;
}

function loincCode(concept: unknown): unknown {
  const codings = isObject(concept) ? concept['coding'] : undefined;
  if (!Array.isArray(codings)) return undefined;
  // The vital-signs profile puts the specific LOINC code first or alongside the generic one.
  const loinc = codings.filter((c): c is Json => isObject(c) && c['system'] === LOINC && typeof c['code'] === 'string');
  return loinc[0]?.['code'];
}

function quantity(value: unknown): { value: unknown; unit: unknown } | undefined {
  if (!isObject(value)) return undefined;
  if (value['system'] !== undefined && value['system'] !== UCUM) return undefined;
  return { value: value['value'], unit: value['code'] };
}

/** A batch-response (or transaction-response) Bundle with one response per entry. */
export function bundleResponse(type: 'batch' | 'transaction', entries: readonly EntryOutcome[]): Json {
  return {
    resourceType: 'Bundle',
    type: `${type}-response`,
    entry: entries.map((e) => ({ response: entryResponse(e) })),
  };
}

function entryResponse(e: EntryOutcome): Json {
  switch (e.status) {
    // etag carries the version (FHIR's weak version id): the one stored, or the one a duplicate repeats.
    case 'accepted':
      return e.version === 1
        ? { status: '201 Created', etag: etag(e.version) }
        : {
            status: '201 Created',
            etag: etag(e.version),
            outcome: outcome(
              'information',
              'informational',
              // A withdrawal is a version too, but saying "readers now see it" would tell the
              // device the opposite of what a reader gets (the reading leaves default reads).
              e.withdrawn === true
                ? `stored as version ${e.version}: the reading is withdrawn (entered-in-error); readers leave it out unless they ask for enteredInError=include; the earlier versions are kept`
                : `stored as version ${e.version}: readers now see this version; the earlier versions are kept`,
            ),
          };
    case 'duplicate':
      return {
        status: '200 OK',
        etag: etag(e.version),
        outcome: outcome('information', 'duplicate', `duplicate: identical to stored version ${e.version}, which is not stored twice`),
      };
    case 'not-stored':
      return {
        status: '409 Conflict',
        outcome: outcome('error', 'processing', 'not stored because another entry of this transaction was rejected'),
      };
    case 'rejected':
      return { status: '422 Unprocessable Entity', outcome: outcome('error', 'invalid', `${e.rejection.reason}: ${e.rejection.detail}`) };
  }
}

function etag(version: number): string {
  return `W/"${version}"`;
}

export function outcome(severity: 'information' | 'error', code: string, diagnostics: string): Json {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] };
}
