#!/bin/sh
# Runs once, when the official image's entrypoint initialises an empty data directory.
# Creates least-privilege login roles for the ingest API and the backup jobs. Passwords are read
# from the mounted Secret files and reach psql on stdin, never in argv.
set -eu
ingest_user=$(cat /run/secrets/pms-telemetry/postgres-user)
backup_user=$(cat /run/secrets/pms-backup/postgres-user)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE "$ingest_user" LOGIN PASSWORD '$(sed "s/'/''/g" /run/secrets/pms-telemetry/postgres-password)';
GRANT CONNECT, CREATE, TEMPORARY ON DATABASE "$POSTGRES_DB" TO "$ingest_user";
ALTER SCHEMA public OWNER TO "$ingest_user";
CREATE ROLE "$backup_user" LOGIN REPLICATION PASSWORD '$(sed "s/'/''/g" /run/secrets/pms-backup/postgres-password)';
GRANT CONNECT ON DATABASE "$POSTGRES_DB" TO "$backup_user";
GRANT pg_read_all_data, pg_monitor TO "$backup_user";
SQL
