#!/bin/sh
# Test-only entrypoint of the local stand-in for the official postgres image (npm run images),
# written for this project. It honours the part of that image's contract the manifests use:
#   POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, POSTGRES_INITDB_ARGS,
#   PGDATA; on the first start (no PG_VERSION in PGDATA) it runs initdb, then every
#   /docker-entrypoint-initdb.d/*.sh (executed if executable, sourced otherwise) and *.sql
#   against a server on the Unix socket only, stops it, and execs the real command.
# It never switches users: the pod's runAsUser is the postgres user (uid 999).
set -eu

if [ "${1#-}" != "$1" ]; then
  set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
  exec "$@"
fi

if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
fi
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${PGDATA:=/var/lib/postgresql/data}"
export POSTGRES_USER POSTGRES_DB PGDATA

# One word per argument, each single-quoted, for pg_ctl -o (which hands it to a shell).
quoted_args() {
  out=
  for arg in "$@"; do
    out="$out '$(printf '%s' "$arg" | sed "s/'/'\\\\''/g")'"
  done
  printf '%s' "$out"
}

mkdir -p "$PGDATA"
chmod 0700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "docker-entrypoint: the database is uninitialised and POSTGRES_PASSWORD(_FILE) is not set" >&2
    exit 1
  fi
  # The password reaches initdb on stdin, never in argv or a file of its own.
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as upstream treats it
  printf '%s\n' "$POSTGRES_PASSWORD" | initdb --username="$POSTGRES_USER" --pwfile=/dev/stdin ${POSTGRES_INITDB_ARGS:-}
  shift
  server_opts="$(quoted_args "$@") -c listen_addresses='' -p ${PGPORT:-5432}"
  pg_ctl -D "$PGDATA" -w -o "$server_opts" start
  if [ "$POSTGRES_DB" != postgres ]; then
    printf 'CREATE DATABASE "%s";\n' "$POSTGRES_DB" | psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres
  fi
  for script in /docker-entrypoint-initdb.d/*; do
    case "$script" in
      *.sh)
        echo "docker-entrypoint: running $script"
        if [ -x "$script" ]; then "$script"; else . "$script"; fi
        ;;
      *.sql)
        echo "docker-entrypoint: running $script"
        psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$script"
        ;;
      */\*) ;;
      *) echo "docker-entrypoint: ignoring $script" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  set -- postgres "$@"
  echo "docker-entrypoint: initialised; starting the server"
fi

# The server and its archive_command children get no password in their environment.
unset POSTGRES_PASSWORD
exec "$@"
