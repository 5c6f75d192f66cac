#!/bin/sh
# Runs once, when the official image's entrypoint initialises an empty data directory.
# Creates the login roles, each with only what its user needs:
#   - the telemetry schema owner (pms-telemetry migrate and retention),
#   - the ingest login (pms-telemetry serve), a member of the pms_telemetry_ingest group role
#     that migrate grants table rights to,
#   - the backup login (pg_dump and base-backup's BASE_BACKUP): pg_read_all_data and REPLICATION,
#     nothing else. Not pg_monitor: what pms-backup reads of the server (pg_stat_archiver,
#     pg_control_system(), archive_mode, archive_command, pg_is_in_recovery()) is readable by any
#     login, and it never calls pg_ls_waldir() or reads other sessions' pg_stat_activity;
#   - the exporter login (postgres-exporter sidecar): pg_monitor only, no table data at all;
#   - pms_restore, the full restore's role (docs/runbook.md, "Full restore"): NOLOGIN and without
#     a password until an operator enables it for a restore. It creates the staging database
#     (CREATEDB) and, as a member of the schema owner, restores the objects with their owner and
#     grants; the swap into patient_telemetry stays with the superuser over the socket.
# Login names come from the Secrets, so pg_hba.conf cannot name them: each login is also a member
# of one fixed pms_connect_* group (no privileges, NOLOGIN) and pg_hba.conf admits "+group"
# (docs/deploy.md, "Database roles").
# Passwords are read from the mounted Secret files and reach psql on stdin, never in argv.
set -eu
quote() { sed "s/'/''/g" "$1"; }
owner_user=$(cat /run/secrets/pms-telemetry/migrate-user)
ingest_user=$(cat /run/secrets/pms-telemetry/postgres-user)
backup_user=$(cat /run/secrets/pms-backup/postgres-user)
exporter_user=$(cat /run/secrets/postgres-exporter/postgres-user)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
-- Only the logins below may connect or create temporary tables (PUBLIC may, by default).
REVOKE ALL ON DATABASE "$POSTGRES_DB" FROM PUBLIC;
CREATE ROLE pms_connect_owner NOLOGIN;
CREATE ROLE pms_connect_ingest NOLOGIN;
CREATE ROLE pms_connect_backup NOLOGIN;
CREATE ROLE pms_connect_exporter NOLOGIN;
CREATE ROLE pms_connect_restore NOLOGIN;

CREATE ROLE "$owner_user" LOGIN IN ROLE pms_connect_owner PASSWORD '$(quote /run/secrets/pms-telemetry/migrate-password)';
GRANT CONNECT, CREATE, TEMPORARY ON DATABASE "$POSTGRES_DB" TO "$owner_user";
-- pms-telemetry migrate grants pg_read_all_data to the backup role; it may only do so with the
-- admin option. The group roles it would otherwise create (which needs CREATEROLE) exist already.
GRANT pg_read_all_data TO "$owner_user" WITH ADMIN OPTION;
CREATE ROLE pms_telemetry_ingest NOLOGIN;
CREATE ROLE pms_telemetry_reporting NOLOGIN;
CREATE ROLE "$ingest_user" LOGIN IN ROLE pms_telemetry_ingest, pms_connect_ingest PASSWORD '$(quote /run/secrets/pms-telemetry/postgres-password)';
GRANT CONNECT ON DATABASE "$POSTGRES_DB" TO "$ingest_user";

CREATE ROLE "$backup_user" LOGIN REPLICATION IN ROLE pms_connect_backup PASSWORD '$(quote /run/secrets/pms-backup/postgres-password)';
GRANT CONNECT ON DATABASE "$POSTGRES_DB" TO "$backup_user";
GRANT pg_read_all_data TO "$backup_user";
-- A second fence behind the privileges: a stray write fails even where a grant would allow it.
ALTER ROLE "$backup_user" SET default_transaction_read_only = on;

CREATE ROLE "$exporter_user" LOGIN IN ROLE pms_connect_exporter PASSWORD '$(quote /run/secrets/postgres-exporter/postgres-password)';
GRANT CONNECT ON DATABASE "$POSTGRES_DB" TO "$exporter_user";
GRANT pg_monitor TO "$exporter_user";
ALTER ROLE "$exporter_user" SET default_transaction_read_only = on;

CREATE ROLE pms_restore NOLOGIN CREATEDB IN ROLE pms_connect_restore, "$owner_user";
SQL
