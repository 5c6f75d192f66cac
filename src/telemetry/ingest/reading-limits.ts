/**
 * Caps applied to each reading before it is parsed (docs/telemetry.md, "Per-reading limits").
 * A /v1 reading is about 150 bytes at depth 3 (reading, components, component); a FHIR entry with
 * components about 1 KB at depth 7 (entry, resource, component, item, code, coding, coding item).
 * The caps leave room for FHIR extensions without letting one reading cost more than a batch.
 */
export const MAX_READING_BYTES = 16 * 1024;
export const MAX_READING_DEPTH = 32;
/** Nesting allowed in the body outside its readings (the Bundle or {"readings":[…]} around them). */
export const MAX_ENVELOPE_DEPTH = 16;
