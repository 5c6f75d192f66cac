#!/bin/sh
# The HA member's entrypoint (deploy/components/postgres-ha): write this member's patroni.yml from
# the pod's environment and Secrets (pms-patroni-config, src/postgres/patroni/), then become Patroni,
# which runs PostgreSQL as its child and handles SIGTERM by stopping it cleanly.
set -eu
config="${PMS_PATRONI_RUN_DIR:-/run/patroni}/patroni.yml"
rm -f "$config"
pms-patroni-config "$config"
exec patroni "$config"
