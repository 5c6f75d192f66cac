import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { CopyRowFilter } from './copy-row-filter.js';

const PATIENT = '9434765919';
const OTHER = '4010232137';

/** Shaped like `pg_restore --data-only -n telemetry -f -` output (PostgreSQL 15's pg_restore). */
const SCRIPT = [
  '--',
  '-- PostgreSQL database dump',
  '--',
  "SELECT pg_catalog.set_config('search_path', '', false);",
  'COPY telemetry.reading (reading_id, patient_nhs_number, code, value) FROM stdin;',
  `r1\t${PATIENT}\t8867-4\t72`,
  `r2\t${OTHER}\t8867-4\t80`,
  `r3\t${PATIENT}\t8867-4\t74`,
  '\\.',
  '',
  'COPY telemetry.device (device_id, label) FROM stdin;',
  `d1\tward 3 monitor of ${PATIENT}`,
  '\\.',
  '',
  "SELECT pg_catalog.setval('telemetry.reading_seq', 42, true);",
  '',
].join('\n');

async function filtered(input: Buffer | string, chunkBytes: number, value = PATIENT): Promise<{ out: Buffer; kept: Map<string, number> }> {
  const bytes = Buffer.from(input);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunkBytes) chunks.push(bytes.subarray(i, i + chunkBytes));
  const filter = new CopyRowFilter('patient_nhs_number', value);
  const out: Buffer[] = [];
  await Readable.from(chunks)
    .pipe(filter)
    .forEach((chunk: Buffer | string) => {
      out.push(Buffer.from(chunk));
    });
  return { out: Buffer.concat(out), kept: filter.kept };
}

test('inside COPY blocks only the patient’s rows are kept; everything outside passes unchanged', async () => {
  const { out, kept } = await filtered(SCRIPT, 64 * 1024);
  const lines = out.toString().split('\n');
  assert.deepEqual(
    lines.filter((l) => l.startsWith('r')),
    [`r1\t${PATIENT}\t8867-4\t72`, `r3\t${PATIENT}\t8867-4\t74`],
  );
  assert.ok(!out.toString().includes(OTHER));
  for (const kept of [
    '--',
    "SELECT pg_catalog.set_config('search_path', '', false);",
    "SELECT pg_catalog.setval('telemetry.reading_seq', 42, true);",
  ]) {
    assert.ok(lines.includes(kept), kept);
  }
  assert.equal(lines.filter((l) => l === '\\.').length, 2, 'every COPY block is still terminated');
  assert.deepEqual(
    [...kept],
    [
      ['telemetry.reading', 2],
      ['telemetry.device', 0],
    ],
  );
});

test('a table without the patient column keeps no rows, even one that mentions the patient', async () => {
  const { out } = await filtered(SCRIPT, 64 * 1024);
  assert.ok(!out.toString().includes('ward 3 monitor'));
  assert.match(out.toString(), /COPY telemetry\.device \(device_id, label\) FROM stdin;\n\\\.\n/);
});

test('the output does not depend on where chunks end: one byte at a time gives the same bytes', async () => {
  const whole = await filtered(SCRIPT, SCRIPT.length);
  for (const size of [1, 2, 7, 63]) {
    assert.deepEqual((await filtered(SCRIPT, size)).out, whole.out, `chunks of ${size} bytes`);
  }
});

test('a multi-byte character split between chunks reaches the output intact', async () => {
  const row = `r1\t${PATIENT}\tRenée Ødegård 😷`;
  const script = `COPY telemetry.note (id, patient_nhs_number, text) FROM stdin;\n${row}\n\\.\n`;
  for (const size of [1, 3, 50]) {
    const { out } = await filtered(script, size);
    assert.deepEqual(out, Buffer.from(script), `chunks of ${size} bytes`);
  }
});

test('a quoted table name with a space (as pg_restore prints it) is filtered like any other', async () => {
  // Not recognising this header would let every row of the table through.
  const script = [
    'COPY telemetry."My Table" (patient_nhs_number, "Note Text", id) FROM stdin;',
    `${PATIENT}\tRen\u00e9e\\ttab\\\\back\t1`,
    `${OTHER}\tother\t2`,
    '\\.',
    '',
  ].join('\n');
  const { out, kept } = await filtered(script, 16);
  assert.ok(!out.toString().includes(OTHER));
  assert.deepEqual([...kept], [['telemetry."My Table"', 1]]);
});

test('a quoted column name is matched without its quotes, at any position', async () => {
  const script = `COPY telemetry.x ("Id", "patient_nhs_number") FROM stdin;\n1\t${OTHER}\n2\t${PATIENT}\n\\.\n`;
  const { out, kept } = await filtered(script, 5);
  assert.equal(out.toString(), `COPY telemetry.x ("Id", "patient_nhs_number") FROM stdin;\n2\t${PATIENT}\n\\.\n`);
  assert.equal(kept.get('telemetry.x'), 1);
});

test('the value must equal the whole field: a longer number or another column holding it does not match', async () => {
  const script = `COPY telemetry.reading (patient_nhs_number, note) FROM stdin;\n${PATIENT}0\tx\n${OTHER}\t${PATIENT}\n\\N\t${PATIENT}\n\\.\n`;
  const { kept } = await filtered(script, 1024);
  assert.equal(kept.get('telemetry.reading'), 0);
});

test('a last line without a newline is still filtered and terminated', async () => {
  const script = `COPY telemetry.reading (patient_nhs_number) FROM stdin;\n${OTHER}\n${PATIENT}\n\\.`;
  const { out } = await filtered(script, 4);
  assert.equal(out.toString(), `COPY telemetry.reading (patient_nhs_number) FROM stdin;\n${PATIENT}\n\\.\n`);
});
