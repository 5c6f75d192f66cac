#!/bin/sh
# Patroni runs this once, on the member that initialises the cluster, right after initdb and
# before it creates its replication and rewind logins: the application database, then the same
# logins and groups as the single server's init script (deploy/base/postgres/10-pms-roles.sh).
# The superuser connects over the Unix socket by peer authentication (no password exists).
set -eu
export PGHOST=/var/run/postgresql
createdb --username="$POSTGRES_USER" "$POSTGRES_DB"
exec sh /docker-entrypoint-initdb.d/10-pms-roles.sh
