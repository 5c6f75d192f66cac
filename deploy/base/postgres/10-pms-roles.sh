#!/bin/sh
# Runs once, when the official image's entrypoint initialises an empty data directory.
# Creates the login roles, each with only what its user needs:
#   - the telemetry schema owner (pms-telemetry migrate and retention),
#   - the ingest login (pms-telemetry serve), a member of the pms_telemetry_ingest group role
#     that migrate grants table rights to,
#   - the backup login (pg_dump, base-backup over a replication connection, the exporter): read-only, replication, monitoring.
# Passwords are read from the mounted Secret files and reach psql on stdin, never in argv.
set -eu
quote() { sed "s/'/''/g" "$1"; }
owner_user=$(cat /run/secrets/pms-telemetry/migrate-user)
ingest_user=$(cat /run/secrets/pms-telemetry/postgres-user)
backup_user=$(cat /run/secrets/pms-backup/postgres-user)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE "$owner_user" LOGIN PASSWORD '$(quote /run/secrets/pms-telemetry/migrate-password)';
GRANT CONNECT, CREATE, TEMPORARY ON DATABASE "$POSTGRES_DB" TO "$owner_user";
-- pms-telemetry migrate grants pg_read_all_data to the backup role; it may only do so with the
-- admin option. The group roles it would otherwise create (which needs CREATEROLE) exist already.
GRANT pg_read_all_data TO "$owner_user" WITH ADMIN OPTION;
CREATE ROLE pms_telemetry_ingest NOLOGIN;
CREATE ROLE pms_telemetry_reporting NOLOGIN;
CREATE ROLE "$ingest_user" LOGIN IN ROLE pms_telemetry_ingest PASSWORD '$(quote /run/secrets/pms-telemetry/postgres-password)';
GRANT CONNECT ON DATABASE "$POSTGRES_DB" TO "$ingest_user";
CREATE ROLE "$backup_user" LOGIN REPLICATION PASSWORD '$(quote /run/secrets/pms-backup/postgres-password)';
GRANT CONNECT ON DATABASE "$POSTGRES_DB" TO "$backup_user";
GRANT pg_read_all_data, pg_monitor TO "$backup_user";
SQL
