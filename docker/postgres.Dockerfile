# syntax=docker/dockerfile:1
# PostgreSQL 15 (the official image) with pms-backup inside, for archive_command
# (`pms-backup wal-push %p`) and restore_command (`pms-backup wal-fetch %f %p`).
#   docker build -f docker/postgres.Dockerfile -t ghcr.io/nhs-pms/pms-postgres:15.18-0.1.0 .
# Node comes from the pinned node image rather than apt, so both images run the same Node build.

FROM node:20.20.2-bookworm-slim AS node

FROM node:20.20.2-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --ignore-scripts
COPY src ./src
COPY bin ./bin
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM postgres:15.18-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends zstd ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
WORKDIR /opt/pms
COPY --from=build --chown=root:root /src/package.json ./
COPY --from=build --chown=root:root /src/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist ./dist
COPY --from=build --chown=root:root /src/bin ./bin
RUN ln -s /opt/pms/bin/pms-backup.js /usr/local/bin/pms-backup && chmod 0755 /opt/pms/bin/*.js
WORKDIR /
ENV NODE_ENV=production
# The official image's postgres user (uid 999): the StatefulSet runs as 999 with runAsNonRoot.
USER 999:999
