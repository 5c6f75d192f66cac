/**
 * A database that exercises what a logical backup must carry: several schemas, bytea, jsonb,
 * arrays, unicode, NULLs, numeric/timestamptz, a partitioned table, indexes, a view, sequences
 * with advanced values and an identity column.
 */
export const SAMPLE_SCHEMA_SQL = `
CREATE SCHEMA telemetry;
CREATE SCHEMA audit;
CREATE TABLE telemetry.device (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  serial text NOT NULL UNIQUE,
  firmware bytea,
  tags text[],
  settings jsonb,
  registered_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE telemetry.reading (
  device_id integer NOT NULL REFERENCES telemetry.device(id),
  measured_at timestamptz NOT NULL,
  value numeric(10,3),
  note text,
  PRIMARY KEY (device_id, measured_at)
) PARTITION BY RANGE (measured_at);
CREATE TABLE telemetry.reading_2026_10 PARTITION OF telemetry.reading FOR VALUES FROM ('2026-10-01') TO ('2026-11-01');
CREATE TABLE telemetry.reading_2026_11 PARTITION OF telemetry.reading FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
CREATE INDEX reading_value_idx ON telemetry.reading (value);
CREATE TABLE audit.event (id bigserial PRIMARY KEY, payload jsonb, happened_at timestamp, ratio double precision, flags boolean[], uid uuid);
CREATE INDEX event_payload_gin ON audit.event USING gin (payload);
CREATE SEQUENCE audit.ticket_seq START 1000 INCREMENT 7;
CREATE VIEW telemetry.latest AS SELECT device_id, max(measured_at) AS last_seen FROM telemetry.reading GROUP BY device_id;
CREATE TABLE public.empty_table (id int);
`;

export const SAMPLE_DATA_SQL = `
INSERT INTO telemetry.device (serial, firmware, tags, settings)
SELECT 'SN-' || g, CASE WHEN g % 5 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') || '\\x00ff00'::bytea END,
       ARRAY['ward-' || (g % 3), CASE WHEN g % 2 = 0 THEN 'ünïcødé ✓ 心拍' ELSE NULL END],
       jsonb_build_object('interval', g % 60, 'nested', jsonb_build_object('k', 'väl"ue\\n'), 'list', jsonb_build_array(1, 'two', null))
FROM generate_series(1, 200) g;
INSERT INTO telemetry.reading
SELECT 1 + (g % 200), timestamptz '2026-10-15 00:00:00+00' + g * interval '37 seconds', CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 1000) / 7.0 END,
       CASE WHEN g % 13 = 0 THEN E'line1\\nline2\\ttab ''quote''' ELSE NULL END
FROM generate_series(1, 60000) g;
INSERT INTO audit.event (payload, happened_at, ratio, flags, uid)
SELECT jsonb_build_object('n', g, 'emoji', '🫀'), timestamp '2026-01-01' + g * interval '1 hour', g / 3.0, ARRAY[g % 2 = 0, NULL], md5(g::text)::uuid
FROM generate_series(1, 5000) g;
SELECT setval('audit.ticket_seq', 4242);
`;

/** One fingerprint per table (ordered text of every row) plus sequence positions, to compare databases. */
export const FINGERPRINT_SQL = `
SELECT string_agg(line, E'\\n' ORDER BY line) FROM (
  SELECT 'telemetry.device ' || count(*) || ' ' || md5(string_agg(d::text, '|' ORDER BY d.id)) AS line FROM telemetry.device d
  UNION ALL SELECT 'telemetry.reading ' || count(*) || ' ' || md5(string_agg(r::text, '|' ORDER BY r.device_id, r.measured_at)) FROM telemetry.reading r
  UNION ALL SELECT 'audit.event ' || count(*) || ' ' || md5(string_agg(e::text, '|' ORDER BY e.id)) FROM audit.event e
  UNION ALL SELECT 'public.empty_table ' || count(*) FROM public.empty_table
  UNION ALL SELECT 'seq ticket ' || last_value || ' ' || is_called FROM audit.ticket_seq
  UNION ALL SELECT 'seq event ' || last_value FROM audit.event_id_seq
  UNION ALL SELECT 'identity next ' || (SELECT last_value FROM telemetry.device_id_seq)
  UNION ALL SELECT 'index ' || indexname FROM pg_indexes WHERE schemaname IN ('telemetry', 'audit')
  UNION ALL SELECT 'view ' || viewname FROM pg_views WHERE schemaname = 'telemetry'
) lines`;
