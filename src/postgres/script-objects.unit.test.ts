import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { PmsError } from '../errors/catalogue.js';
import { restoreFailure } from './logical-restore.js';
import { ScriptObjects } from './script-objects.js';

const MARKER = 'PATIENT-MARKER-2f9c';

/** Shaped like PostgreSQL 15's `pg_restore -f -`, with a COPY row that looks like a header. */
const SCRIPT = [
  '--', // 1
  '-- PostgreSQL database dump', // 2
  '--', // 3
  "SET client_encoding = 'UTF8';", // 4
  '--', // 5
  '-- Name: vitals; Type: TABLE; Schema: public; Owner: postgres', // 6
  '--', // 7
  'CREATE TABLE public.vitals (id integer, note text);', // 8
  '--', // 9
  '-- Data for Name: vitals; Type: TABLE DATA; Schema: public; Owner: postgres', // 10
  '--', // 11
  'COPY public.vitals (id, note) FROM stdin;', // 12
  `1\t-- Name: ${MARKER}; Type: TABLE; Schema: x; Owner: y`, // 13: a row, not a header
  `2\t${MARKER}`, // 14
  '\\.', // 15
  '--', // 16
  '-- Name: vitals_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres', // 17
  'ALTER TABLE ONLY public.vitals ADD CONSTRAINT vitals_pkey PRIMARY KEY (id);', // 18
  '-- Name: f(integer); Type: FUNCTION; Schema: -; Owner: -', // 19
  '',
].join('\n');

async function track(chunkSize: number): Promise<ScriptObjects> {
  const objects = new ScriptObjects();
  const bytes = Buffer.from(SCRIPT);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunkSize) chunks.push(bytes.subarray(i, i + chunkSize));
  let passed = Buffer.alloc(0);
  await pipeline(
    Readable.from(chunks),
    objects,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        passed = Buffer.concat([passed, chunk]);
        callback();
      },
    }),
  );
  assert.equal(passed.toString(), SCRIPT, 'the script passes through unchanged');
  return objects;
}

test('each line of the script is named by the archive entry it belongs to, whatever the chunking; COPY rows are never headers', async () => {
  for (const size of [1, 2, 3, 7, 64, 100_000]) {
    const objects = await track(size);
    assert.equal(objects.objectAt(4), undefined, `size ${size}`);
    assert.equal(objects.objectAt(8), 'TABLE public.vitals');
    assert.equal(objects.objectAt(13), 'TABLE DATA public.vitals');
    assert.equal(objects.objectAt(15), 'TABLE DATA public.vitals');
    assert.equal(objects.objectAt(18), 'CONSTRAINT public.vitals_pkey');
    assert.equal(objects.objectAt(19), 'FUNCTION f(integer)');
  }
});

test("psql's error becomes the SQLSTATE and the object; nothing else of its output is kept", () => {
  const objects = { objectAt: (line: number) => (line >= 10 ? 'TABLE DATA public.vitals' : undefined) };
  const failed = new PmsError('PMS_ERR_TOOL_FAILED', `psql exited with status 3: ${MARKER}`, { details: { exitCode: 3 } });
  const error = restoreFailure(failed, 'psql:<stdin>:15: ERROR:  23514\n', objects);
  assert.equal(error.code, 'PMS_ERR_TOOL_FAILED');
  assert.match(error.message, /^pg_restore: SQLSTATE 23514 in TABLE DATA public\.vitals \(line 15 of the restore script;/);
  assert.deepEqual(error.details, { tool: 'psql', exitCode: 3, sqlstate: '23514', object: 'TABLE DATA public.vitals' });
  assert.equal(error.cause, undefined);
  // Anything psql says that is not its SQLSTATE line is withheld.
  const other = restoreFailure(failed, `psql:<stdin>:15: invalid command \\N ${MARKER}\n`, objects);
  assert.doesNotMatch(`${other.message} ${JSON.stringify(other.details)}`, new RegExp(MARKER));
  assert.match(other.message, /^pg_restore: psql exited with status 3 \(its output is not kept/);
  const connection = restoreFailure(
    failed,
    'psql: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "x"\n',
    objects,
  );
  assert.match(connection.message, /^pg_restore: psql could not connect: connection to server at "127\.0\.0\.1", port 5432 failed/);
  // With a POSTGRES_HOST list libpq gives one line per server it tried: each is named, the last says why it stopped.
  const list = restoreFailure(
    failed,
    'psql: error: connection to server at "127.0.0.1", port 5432 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?\nconnection to server at "127.0.0.1", port 5433 failed: FATAL:  database "x__restoring_abc123" does not exist\n',
    objects,
  );
  assert.match(
    list.message,
    /port 5432 failed: Connection refused; connection to server at "127\.0\.0\.1", port 5433 failed: FATAL: {2}database "x__restoring_abc123" does not exist$/,
  );
  const aborted = new PmsError('PMS_ERR_ABORTED', 'psql was stopped because the operation was cancelled');
  assert.equal(restoreFailure(aborted, '', objects), aborted);
});
