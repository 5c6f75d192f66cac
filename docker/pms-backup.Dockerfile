# syntax=docker/dockerfile:1
# pms-backup: Node 24 LTS + PostgreSQL 15 client AND server binaries (verify restores into a
# throwaway server inside the pod) + zstd + gpg (break-glass). Build from the repository root:
#   docker build -f docker/pms-backup.Dockerfile -t ghcr.io/nhs-pms/pms-backup:0.1.0 .
# Base images are pinned by version; CI resolves and records their digests (ci.yml).
# PostgreSQL comes from the same image as pms-postgres (docker/postgres.Dockerfile), so verify
# restores with exactly the server's minor version, and the image holds no database cluster
# (Debian's postgresql package would create an unused one in /var/lib/postgresql/15/main).

FROM node:24.22.3-bookworm-slim AS node

FROM node:24.22.3-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --ignore-scripts
COPY src ./src
COPY bin ./bin
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM postgres:15.20-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends zstd gnupg ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 pms && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin pms \
 && groupadd --gid 10002 pms-verify && useradd --uid 10002 --gid 10002 --no-create-home --shell /usr/sbin/nologin pms-verify
COPY --from=node /usr/local/bin/node /usr/local/bin/node
ENV NODE_ENV=production PG_BIN_DIR=/usr/lib/postgresql/15/bin PATH=/opt/pms/node_modules/.bin:/opt/pms/bin:$PATH
WORKDIR /opt/pms
COPY --from=build --chown=root:root /src/package.json ./
COPY --from=build --chown=root:root /src/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist ./dist
COPY --from=build --chown=root:root /src/bin ./bin
RUN ln -s /opt/pms/bin/pms-backup.js /usr/local/bin/pms-backup && chmod 0755 /opt/pms/bin/*.js
# No secrets in the image: keys, passwords and credentials arrive as mounted files (*_FILE).
# uid 10001 runs every job; 10002 only verify-server, the verify pod's sidecar that holds no key.
USER 10001:10001
# Not the base's server entrypoint and stop signal: this image runs pms-backup commands.
STOPSIGNAL SIGTERM
ENTRYPOINT ["pms-backup"]
CMD ["--help"]
