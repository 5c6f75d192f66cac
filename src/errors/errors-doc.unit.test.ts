import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERRORS, EXIT, type ErrorCode, describeExitCodes } from './catalogue.js';

// Compiled to dist/errors/: the repository root is two levels up.
const DOC_PATH = fileURLToPath(new URL('../../docs/errors.md', import.meta.url));
const doc = readFileSync(DOC_PATH, 'utf8');
const codes = Object.keys(ERRORS) as ErrorCode[];

/** Splits the document at its `## ` headings; the text before the first one is the title. */
function sections(markdown: string): { heading: string; body: string }[] {
  return markdown
    .split(/^## /m)
    .slice(1)
    .map((chunk) => {
      const newline = chunk.indexOf('\n');
      return { heading: chunk.slice(0, newline === -1 ? undefined : newline).trim(), body: chunk.slice(newline + 1) };
    });
}

const codeSections = sections(doc).filter((s) => s.heading.startsWith('PMS_ERR_'));

describe('docs/errors.md documents the error catalogue', () => {
  test('every catalogue code has exactly one section', () => {
    for (const code of codes) {
      const count = codeSections.filter((s) => s.heading === code).length;
      assert.equal(count, 1, `## ${code}: ${count} sections`);
    }
  });

  test('every PMS_ERR_ section names a code that exists', () => {
    for (const { heading } of codeSections) {
      assert.ok(Object.hasOwn(ERRORS, heading), `## ${heading} is not in src/errors/catalogue.ts`);
    }
  });

  test("each section states the code's exit code, once", () => {
    for (const { heading, body } of codeSections) {
      const stated = [...body.matchAll(/^Exit code: (\d+)\s*$/gm)].map((m) => Number(m[1]));
      assert.equal(stated.length, 1, `## ${heading}: expected one "Exit code: N" line, found ${stated.length}`);
      // A heading that is not a code fails the test above; here it has no exit code to compare.
      if (!Object.hasOwn(ERRORS, heading)) continue;
      assert.equal(stated[0], ERRORS[heading as ErrorCode].exitCode, `## ${heading}: exit code`);
    }
  });

  test('the exit-code table has a row per exit status listing exactly the codes that exit with it', () => {
    const intro = doc.slice(0, doc.search(/^## PMS_ERR_/m));
    const rows = new Map<number, string[]>();
    for (const match of intro.matchAll(/^\| (\d+) \|(.*)$/gm)) {
      const status = Number(match[1]);
      assert.ok(!rows.has(status), `exit ${status} has two rows`);
      rows.set(status, [...(match[2] ?? '').matchAll(/PMS_ERR_[A-Z_]+/g)].map((m) => m[0]).sort());
    }
    assert.deepEqual(
      [...rows.keys()].sort((a, b) => a - b),
      [...new Set(Object.values(EXIT))].sort((a, b) => a - b),
    );
    for (const [status, listed] of rows) {
      const expected = codes.filter((code) => ERRORS[code].exitCode === status).sort();
      assert.deepEqual(listed, expected, `codes listed for exit ${status}`);
    }
  });

  test('--help points at the document', () => {
    assert.match(describeExitCodes(), /docs\/errors\.md$/);
  });
});
