# syntax=docker/dockerfile:1
# PostgreSQL 15 (the official image) with pms-backup inside, for archive_command
# (`pms-backup wal-push %p`) and restore_command (`pms-backup wal-fetch %f %p`), and Patroni for the
# prod overlay's three-member cluster (entrypoint /usr/local/bin/pms-patroni; the single server of
# dev keeps the official entrypoint).
#   docker build -f docker/postgres.Dockerfile -t ghcr.io/nhs-pms/pms-postgres:15.20-0.1.0 .
# Node comes from the pinned node image rather than apt, so both images run the same Node build.

FROM node:24.22.3-bookworm-slim AS node

FROM node:24.22.3-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --ignore-scripts
COPY src ./src
COPY bin ./bin
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM postgres:15.20-bookworm
# Patroni from Debian bookworm (3.0), not the PGDG repository the base image also lists (4.x):
# 4.0 renamed the leader's role label to "primary", which the HA Services select on.
# python3-etcd is named, not left to the package's "python3-etcd | python3-consul | ..." choice:
# Patroni 3.0's etcd3 DCS (PMS_PATRONI_DCS=etcd3, for sites without Kubernetes API access)
# imports it and, through it, python3-dnspython; the Kubernetes DCS needs nothing more than urllib3.
RUN apt-get update \
 && apt-get install -y --no-install-recommends -t bookworm zstd ca-certificates patroni python3-etcd \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
WORKDIR /opt/pms
COPY --from=build --chown=root:root /src/package.json ./
COPY --from=build --chown=root:root /src/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist ./dist
COPY --from=build --chown=root:root /src/bin ./bin
COPY --chown=root:root --chmod=0755 docker/patroni/entrypoint.sh /usr/local/bin/pms-patroni
COPY --chown=root:root --chmod=0755 docker/patroni/post-bootstrap.sh /usr/local/bin/pms-patroni-post-bootstrap
RUN ln -s /opt/pms/bin/pms-backup.js /usr/local/bin/pms-backup \
 && ln -s /opt/pms/bin/pms-patroni-config.js /usr/local/bin/pms-patroni-config \
 && chmod 0755 /opt/pms/bin/*.js
WORKDIR /
ENV NODE_ENV=production
# The official image's postgres user (uid 999): the StatefulSet runs as 999 with runAsNonRoot.
USER 999:999
