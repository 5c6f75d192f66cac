import { HttpError } from '../api/http-error.js';
import type { RejectionReason } from '../validation/rejection-reason.js';
import { MAX_ENVELOPE_DEPTH, MAX_READING_BYTES, MAX_READING_DEPTH } from './reading-limits.js';

/** One element of the batch array: parsed, or turned away with the bytes exactly as received. */
export type BatchItem =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly reason: RejectionReason; readonly detail: string; readonly raw: Buffer };

export interface SplitBatch {
  /** The body with every element of the batch array replaced by 0: what the route checks the shape of. */
  readonly envelope: unknown;
  /** The elements of the top-level object's array under the key, or undefined when there is none. */
  readonly items: readonly BatchItem[] | undefined;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const PLACEHOLDER = Buffer.from('0');

interface Span {
  readonly start: number;
  readonly end: number;
  readonly depth: number;
}

/**
 * Splits a raw JSON body into its envelope and the elements of one top-level array
 * (`readings`, or a Bundle's `entry`) without parsing the elements, so that one element too
 * deep, too large, not UTF-8 or not JSON is rejected alone while the others are kept. Parsing
 * the whole body at once cannot do that: it fails as one, and a value nested 200 000 deep parses
 * but then overflows the stack of everything that walks it (JSON.stringify, PostgreSQL's jsonb).
 *
 * The scan only tracks strings and brackets (UTF-8 continuation bytes are never ASCII, so bytes
 * suffice); grammar is left to JSON.parse, once for the envelope and once per element. Anything
 * the scan cannot split, or an envelope that is not JSON, is a 400 for the whole body.
 */
export function splitBatch(body: Buffer, key: string): SplitBatch {
  const keyBytes = Buffer.from(JSON.stringify(key), 'utf8');
  const spans: Span[] = [];
  const n = body.length;
  let depth = 0;
  let envelopeDepth = 0;
  let topIsObject = false;
  let expectKey = false;
  let valueOfTarget = false;
  let targetSeen = false;
  let inTarget = false;
  let itemStart = 0;
  let itemDepth = 0;
  for (let i = 0; i < n; i += 1) {
    const c = body[i];
    if (c === QUOTE) {
      const end = closingQuote(body, i);
      if (end < 0) throw malformed('a string is not terminated');
      if (depth === 1 && expectKey && topIsObject) {
        valueOfTarget = isKey(body, i, end, keyBytes, key);
        expectKey = false;
      }
      i = end;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      depth += 1;
      if (depth === 1) {
        topIsObject = c === OPEN_OBJECT;
        expectKey = topIsObject;
        valueOfTarget = false;
      }
      if (inTarget) {
        if (depth - 2 > itemDepth) itemDepth = depth - 2;
      } else {
        if (depth > envelopeDepth) envelopeDepth = depth;
        if (envelopeDepth > MAX_ENVELOPE_DEPTH)
          throw new HttpError('invalid-body', `the body outside its ${key} may nest at most ${MAX_ENVELOPE_DEPTH} levels`);
        if (depth === 2 && c === OPEN_ARRAY && valueOfTarget) {
          if (targetSeen) throw new HttpError('invalid-body', `${key} appears twice`);
          targetSeen = true;
          inTarget = true;
          itemStart = i + 1;
          itemDepth = 0;
        }
      }
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      if (inTarget && depth === 2) {
        pushSpan(body, spans, itemStart, i, itemDepth, true);
        inTarget = false;
        valueOfTarget = false;
      }
      depth -= 1;
      if (depth < 0) throw malformed('a bracket closes nothing');
    } else if (c === COMMA) {
      if (inTarget && depth === 2) {
        pushSpan(body, spans, itemStart, i, itemDepth, false);
        itemStart = i + 1;
        itemDepth = 0;
      } else if (depth === 1) {
        expectKey = topIsObject;
        valueOfTarget = false;
      }
    }
  }
  if (depth !== 0) throw malformed('brackets are not balanced');
  return (
    (targetSeen && parseWhole(body, key, spans)) || {
      envelope: parseEnvelope(body, spans),
      items: targetSeen ? spans.map((s) => parseItem(body, s)) : undefined,
    }
  );
}

/**
 * The common case, at the cost of one JSON.parse: when no element is too deep or too large and
 * the whole body decodes and parses, its array holds exactly the scanned elements, so they need
 * no parse of their own (only the character check, and only when a \u escape occurs). Anything
 * else returns undefined and takes the element-by-element path.
 */
function parseWhole(body: Buffer, key: string, spans: readonly Span[]): SplitBatch | undefined {
  if (!spans.every((s) => s.end - s.start <= MAX_READING_BYTES && s.depth <= MAX_READING_DEPTH)) return undefined;
  let text: string;
  let value: unknown;
  try {
    text = decodeUtf8(body);
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const array = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  if (!Array.isArray(array) || array.length !== spans.length) return undefined;
  const escapes = text.includes('\\u');
  const items = array.map((element: unknown, i): BatchItem => {
    const bad = escapes ? unstorableCharacter(element) : undefined;
    const span = spans[i] as Span;
    return bad ? unstorable(body.subarray(span.start, span.end), bad) : { ok: true, value: element };
  });
  return { envelope: value, items };
}

/** Index of the quote ending the string that starts at `open`, or -1. */
function closingQuote(body: Buffer, open: number): number {
  let from = open + 1;
  for (;;) {
    const q = body.indexOf(QUOTE, from);
    if (q < 0) return -1;
    let backslashes = 0;
    for (let j = q - 1; j > open && body[j] === BACKSLASH; j -= 1) backslashes += 1;
    if (backslashes % 2 === 0) return q;
    from = q + 1;
  }
}

function isKey(body: Buffer, open: number, close: number, keyBytes: Buffer, key: string): boolean {
  const length = close + 1 - open;
  if (length === keyBytes.length && body.compare(keyBytes, 0, length, open, close + 1) === 0) return true;
  // An escaped spelling ("read\u0069ngs") is the same key to JSON.parse, so it must be to us.
  const escaped = body.indexOf(BACKSLASH, open);
  if (escaped < 0 || escaped > close) return false;
  try {
    return JSON.parse(decodeUtf8(body.subarray(open, close + 1))) === key;
  } catch {
    return false;
  }
}

function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function pushSpan(body: Buffer, spans: Span[], from: number, to: number, depth: number, closing: boolean): void {
  let start = from;
  let end = to;
  while (start < end && isSpace(body[start])) start += 1;
  while (end > start && isSpace(body[end - 1])) end -= 1;
  if (start === end) {
    // `[]` is an empty batch (the route says so); `[1,]` and `[,1]` are not JSON.
    if (closing && spans.length === 0) return;
    throw malformed('an array has an empty element');
  }
  spans.push({ start, end, depth });
}

function parseEnvelope(body: Buffer, spans: readonly Span[]): unknown {
  const parts: Buffer[] = [];
  let at = 0;
  for (const s of spans) {
    parts.push(body.subarray(at, s.start), PLACEHOLDER);
    at = s.end;
  }
  parts.push(body.subarray(at));
  let text: string;
  try {
    text = decodeUtf8(parts.length === 1 ? body : Buffer.concat(parts));
  } catch {
    throw malformed('the body is not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw malformed('the body is not valid JSON');
  }
}

function parseItem(body: Buffer, span: Span): BatchItem {
  const raw = body.subarray(span.start, span.end);
  const reject = (reason: RejectionReason, detail: string): BatchItem => ({ ok: false, reason, detail, raw: Buffer.from(raw) });
  if (span.depth > MAX_READING_DEPTH) return reject('reading-too-deep', `a reading may nest at most ${MAX_READING_DEPTH} levels`);
  if (raw.length > MAX_READING_BYTES)
    return reject('reading-too-large', `a reading may be at most ${MAX_READING_BYTES} bytes of JSON; this one is ${raw.length}`);
  let text: string;
  try {
    text = decodeUtf8(raw);
  } catch {
    return reject('invalid-utf8', 'the reading is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return reject('malformed-reading', 'the reading is not valid JSON');
  }
  // NUL and unpaired surrogates can only arrive as \u escapes (raw ones fail above); PostgreSQL
  // stores neither in text or jsonb, so look for them only when an escape is present.
  const bad = text.includes('\\u') ? unstorableCharacter(value) : undefined;
  return bad ? unstorable(raw, bad) : { ok: true, value };
}

function unstorable(raw: Buffer, what: string): BatchItem {
  return { ok: false, reason: 'invalid-character', detail: `the reading contains ${what}, which cannot be stored`, raw: Buffer.from(raw) };
}

const UNPAIRED_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function unstorableCharacter(value: unknown): string | undefined {
  if (typeof value === 'string') return unstorableInString(value);
  if (Array.isArray(value)) {
    for (const v of value) {
      const bad = unstorableCharacter(v);
      if (bad) return bad;
    }
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const bad = unstorableInString(k) ?? unstorableCharacter(v);
      if (bad) return bad;
    }
  }
  return undefined;
}

function unstorableInString(s: string): string | undefined {
  if (s.includes('\u0000')) return 'a NUL character (\\u0000)';
  if (UNPAIRED_SURROGATE.test(s)) return 'an unpaired UTF-16 surrogate (\\ud800-\\udfff)';
  return undefined;
}

// fatal: invalid UTF-8 is an error, never silently replaced by U+FFFD.
const utf8 = new TextDecoder('utf-8', { fatal: true });
function decodeUtf8(bytes: Uint8Array): string {
  return utf8.decode(bytes);
}

function malformed(why: string): HttpError {
  return new HttpError('malformed-json', `the body is not valid JSON of the expected shape: ${why}`);
}
