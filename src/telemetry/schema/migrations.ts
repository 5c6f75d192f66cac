/**
 * The telemetry schema as versioned SQL. The SQL lives in TypeScript strings so `tsc` ships it in
 * dist/ with no copy step; each migration runs once, in its own transaction, under an advisory
 * lock (see migrate.ts). Never edit an applied migration (its checksum is recorded and checked):
 * add a new one.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const INGEST_ROLE = 'pms_telemetry_ingest';
export const REPORTING_ROLE = 'pms_telemetry_reporting';
export const BACKUP_ROLE = 'pms_backup';

const initial = /* sql */ `
CREATE SCHEMA IF NOT EXISTS telemetry;

-- Modulus 11 over the first nine digits (weights 10..2); a check value of 10 is never issued and
-- cannot equal a digit, so the comparison rejects it. Written as one expression so it is cheap
-- enough for a CHECK on every reading.
CREATE FUNCTION telemetry.nhs_number_is_valid(n text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
  SELECT CASE WHEN n !~ '^[0-9]{10}$' THEN false ELSE
    (11 - ((substr(n,1,1)::int * 10 + substr(n,2,1)::int * 9 + substr(n,3,1)::int * 8
          + substr(n,4,1)::int * 7 + substr(n,5,1)::int * 6 + substr(n,6,1)::int * 5
          + substr(n,7,1)::int * 4 + substr(n,8,1)::int * 3 + substr(n,9,1)::int * 2) % 11)) % 11
    = substr(n,10,1)::int END
$fn$;

CREATE TABLE telemetry.device (
  device_id text PRIMARY KEY CONSTRAINT device_id_format CHECK (device_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$'),
  patient_nhs_number text NOT NULL CONSTRAINT device_nhs_number_valid CHECK (telemetry.nhs_number_is_valid(patient_nhs_number)),
  -- SHA-256 of a 256-bit random token: the token itself is shown once and never stored.
  token_hash bytea NOT NULL UNIQUE,
  registered_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);

CREATE TABLE telemetry.reader (
  reader_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
  token_hash bytea NOT NULL UNIQUE,
  registered_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);

-- One row per stored reading. The unique key must contain the partition key, so a resend is a
-- duplicate when the device repeats (device_id, reading_id, measured_at), which a resend does.
CREATE TABLE telemetry.reading (
  patient_nhs_number text NOT NULL CONSTRAINT reading_nhs_number_valid CHECK (telemetry.nhs_number_is_valid(patient_nhs_number)),
  device_id text NOT NULL,
  reading_id text NOT NULL,
  code text NOT NULL,
  value double precision,
  unit text NOT NULL,
  systolic double precision,
  diastolic double precision,
  measured_at timestamptz NOT NULL,
  -- timestamptz keeps the instant but not the device's offset, which clinicians need for
  -- "was this at night for the patient?".
  measured_at_offset_minutes smallint NOT NULL CHECK (measured_at_offset_minutes BETWEEN -1439 AND 1439),
  received_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT reading_value_xor_components CHECK ((value IS NULL) = (systolic IS NOT NULL AND diastolic IS NOT NULL)),
  CONSTRAINT reading_device_reading_key UNIQUE (device_id, reading_id, measured_at)
) PARTITION BY RANGE (measured_at);

CREATE INDEX reading_patient_code_time ON telemetry.reading (patient_nhs_number, code, measured_at);

-- Rejected readings are kept with their reason: a rejected reading must never vanish.
CREATE TABLE telemetry.quarantined_reading (
  quarantine_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  device_id text NOT NULL,
  patient_nhs_number text NOT NULL,
  reading_id text,
  reason text NOT NULL,
  detail text NOT NULL,
  source text NOT NULL CHECK (source IN ('v1', 'fhir')),
  payload jsonb NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quarantined_reading_received ON telemetry.quarantined_reading (received_at);

CREATE TABLE telemetry.retention_log (
  retention_log_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  partition_name text NOT NULL,
  range_from timestamptz NOT NULL,
  range_to timestamptz NOT NULL,
  row_count bigint NOT NULL,
  retention_days integer NOT NULL,
  dropped_by text NOT NULL DEFAULT current_user,
  dropped_at timestamptz NOT NULL DEFAULT now()
);

-- Monthly partitions named reading_pYYYY_MM with UTC bounds. SECURITY DEFINER so the ingest role
-- can create a partition for late data without owning the table; the window stops it being
-- used to create arbitrary partitions.
CREATE FUNCTION telemetry.ensure_reading_partition(month_of date) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $fn$
DECLARE
  first date := date_trunc('month', month_of)::date;
  part text := format('reading_p%s', to_char(first, 'YYYY_MM'));
BEGIN
  IF first < date_trunc('month', now() - interval '400 days') OR first > now() + interval '800 days' THEN
    RAISE EXCEPTION 'partition month % is outside the allowed window', first USING ERRCODE = '22023';
  END IF;
  IF to_regclass(format('telemetry.%I', part)) IS NULL THEN
    -- Two replicas may race for the same month: serialise, then look again.
    PERFORM pg_advisory_xact_lock(730500002);
    IF to_regclass(format('telemetry.%I', part)) IS NULL THEN
      EXECUTE format('CREATE TABLE telemetry.%I PARTITION OF telemetry.reading FOR VALUES FROM (%L) TO (%L)',
                     part, first::text || ' 00:00:00+00', (first + interval '1 month')::date::text || ' 00:00:00+00');
    END IF;
  END IF;
  RETURN part;
END
$fn$;

DO $roles$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${INGEST_ROLE}') THEN CREATE ROLE ${INGEST_ROLE} NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${REPORTING_ROLE}') THEN CREATE ROLE ${REPORTING_ROLE} NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${BACKUP_ROLE}') THEN CREATE ROLE ${BACKUP_ROLE} NOLOGIN; END IF;
END
$roles$;
GRANT pg_read_all_data TO ${BACKUP_ROLE};

-- The ingest role gets exactly what serve does: authenticate, write readings and quarantine,
-- read readings for the reader API, create partitions through the definer function.
REVOKE ALL ON FUNCTION telemetry.ensure_reading_partition(date) FROM PUBLIC;
GRANT USAGE ON SCHEMA telemetry TO ${INGEST_ROLE}, ${REPORTING_ROLE};
GRANT SELECT (device_id, patient_nhs_number, token_hash, revoked_at) ON telemetry.device TO ${INGEST_ROLE};
GRANT SELECT (reader_id, name, token_hash, revoked_at) ON telemetry.reader TO ${INGEST_ROLE};
GRANT SELECT, INSERT ON telemetry.reading TO ${INGEST_ROLE};
GRANT INSERT ON telemetry.quarantined_reading TO ${INGEST_ROLE};
GRANT EXECUTE ON FUNCTION telemetry.ensure_reading_partition(date) TO ${INGEST_ROLE};
GRANT SELECT ON telemetry.schema_migration TO ${INGEST_ROLE}, ${REPORTING_ROLE};

-- Reporting reads data but never credentials.
GRANT SELECT ON telemetry.reading, telemetry.quarantined_reading, telemetry.retention_log TO ${REPORTING_ROLE};
GRANT SELECT (device_id, patient_nhs_number, registered_at, revoked_at) ON telemetry.device TO ${REPORTING_ROLE};
`;

// The reading table's unique key must contain its partition column (measured_at), so a device
// that resends a reading id with a corrected clock would get a second row. One row per
// (device, reading id) ever accepted closes that: the key is claimed first, the reading stored
// only by the batch that claimed it. Retention deletes keys together with their partition.
const readingKey = /* sql */ `
CREATE TABLE telemetry.reading_key (
  device_id text NOT NULL,
  reading_id text NOT NULL,
  measured_at timestamptz NOT NULL,
  PRIMARY KEY (device_id, reading_id)
);
CREATE INDEX reading_key_measured_at ON telemetry.reading_key (measured_at);
INSERT INTO telemetry.reading_key (device_id, reading_id, measured_at)
  SELECT device_id, reading_id, min(measured_at) FROM telemetry.reading GROUP BY device_id, reading_id;
GRANT SELECT, INSERT ON telemetry.reading_key TO ${INGEST_ROLE};
GRANT SELECT ON telemetry.reading_key TO ${REPORTING_ROLE};
`;

// Readers become scoped and every read leaves a trail (DSPT, Caldicott: who looked at whose
// data). all_patients is NULL for readers registered before this migration: they are refused
// until `reader scope` gives them a scope, because turning old tokens into all-patients tokens
// without anyone deciding it would widen access silently.
const readerScopesAndTrail = /* sql */ `
ALTER TABLE telemetry.reader ADD COLUMN all_patients boolean;

CREATE TABLE telemetry.reader_patient (
  reader_id bigint NOT NULL REFERENCES telemetry.reader (reader_id),
  patient_nhs_number text NOT NULL CONSTRAINT reader_patient_nhs_number_valid CHECK (telemetry.nhs_number_is_valid(patient_nhs_number)),
  PRIMARY KEY (reader_id, patient_nhs_number)
);

-- One row per read the API answered with data or refused for scope. The API may only INSERT,
-- and only the columns below that it knows: the time and the database login are filled in by
-- the server, so a compromised API can neither backdate nor impersonate another login.
CREATE TABLE telemetry.reader_access (
  access_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  accessed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  reader_id bigint NOT NULL REFERENCES telemetry.reader (reader_id),
  reader_name text NOT NULL,
  patient_nhs_number text NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('ok', 'forbidden', 'unscoped')),
  rows_returned integer NOT NULL CHECK (rows_returned >= 0),
  -- The query as asked (code, from, to, limit), so an auditor sees what was looked at.
  filters jsonb NOT NULL,
  recorded_by text NOT NULL DEFAULT session_user
);
CREATE INDEX reader_access_accessed_at ON telemetry.reader_access (accessed_at);
CREATE INDEX reader_access_patient ON telemetry.reader_access (patient_nhs_number, accessed_at);
CREATE INDEX reader_access_reader ON telemetry.reader_access (reader_name, accessed_at);

-- Append-only for every role that is subject to triggers, the owner included: changing the
-- trail takes a deliberate schema change, not a stray UPDATE.
CREATE FUNCTION telemetry.refuse_access_trail_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'telemetry.reader_access is append-only' USING ERRCODE = '42501';
END
$fn$;
CREATE TRIGGER reader_access_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON telemetry.reader_access
  FOR EACH STATEMENT EXECUTE FUNCTION telemetry.refuse_access_trail_change();

GRANT SELECT (all_patients) ON telemetry.reader TO ${INGEST_ROLE};
GRANT SELECT ON telemetry.reader_patient TO ${INGEST_ROLE};
GRANT INSERT (reader_id, reader_name, patient_nhs_number, outcome, rows_returned, filters) ON telemetry.reader_access TO ${INGEST_ROLE};
`;

// A reading turned away before it could be parsed (too deep, too large, not UTF-8, not JSON, or
// holding a NUL that jsonb refuses) is still quarantined: as the bytes received, in raw_payload.
// Exactly one of payload and raw_payload is set.
const rawQuarantine = /* sql */ `
ALTER TABLE telemetry.quarantined_reading
  ADD COLUMN raw_payload bytea,
  ALTER COLUMN payload DROP NOT NULL,
  ADD CONSTRAINT quarantined_reading_payload_or_raw CHECK ((payload IS NULL) <> (raw_payload IS NULL));
`;

// FHIR corrections (issue 14, DCB0129): a reading id may have several versions, each kept; the
// highest version is what readers see. Every version is a new row (the ingest role still only
// INSERTs): version 1 is the first accepted, an amended/corrected/entered-in-error resend (or a
// final after a preliminary) adds version n+1. reading_key now holds one key per version and is
// the index readers use to find the current version without probing every partition.
const readingVersions = /* sql */ `
ALTER TABLE telemetry.reading
  ADD COLUMN status text NOT NULL DEFAULT 'final'
    CONSTRAINT reading_status_stored CHECK (status IN ('preliminary', 'final', 'amended', 'corrected', 'entered-in-error')),
  ADD COLUMN version integer NOT NULL DEFAULT 1 CONSTRAINT reading_version_positive CHECK (version >= 1);
ALTER TABLE telemetry.reading DROP CONSTRAINT reading_device_reading_key;
ALTER TABLE telemetry.reading ADD CONSTRAINT reading_device_reading_version_key UNIQUE (device_id, reading_id, version, measured_at);

ALTER TABLE telemetry.reading_key ADD COLUMN version integer NOT NULL DEFAULT 1 CONSTRAINT reading_key_version_positive CHECK (version >= 1);
ALTER TABLE telemetry.reading_key DROP CONSTRAINT reading_key_pkey;
ALTER TABLE telemetry.reading_key ADD PRIMARY KEY (device_id, reading_id, version);
`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'reading store, devices, readers, quarantine, roles', sql: initial },
  { version: 2, name: 'one key per device reading id, whatever its measured_at', sql: readingKey },
  { version: 3, name: 'reader scopes and the append-only reader access trail', sql: readerScopesAndTrail },
  { version: 4, name: 'quarantine keeps unparseable readings as raw bytes', sql: rawQuarantine },
  { version: 5, name: 'reading status and versions: FHIR corrections kept, never overwritten', sql: readingVersions },
];

export const LATEST_VERSION = Math.max(...MIGRATIONS.map((m) => m.version));
