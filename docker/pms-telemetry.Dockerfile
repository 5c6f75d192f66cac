# syntax=docker/dockerfile:1
# pms-telemetry: the ingest API (serve), migrations and retention. Node 24 LTS only, no PostgreSQL tools.
#   docker build -f docker/pms-telemetry.Dockerfile -t ghcr.io/nhs-pms/pms-telemetry:0.1.0 .

FROM node:24.22.3-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --ignore-scripts
COPY src ./src
COPY bin ./bin
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM node:24.22.3-bookworm-slim
RUN groupadd --gid 10001 pms && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin pms
ENV NODE_ENV=production TELEMETRY_PORT=8080
WORKDIR /opt/pms
COPY --from=build --chown=root:root /src/package.json ./
COPY --from=build --chown=root:root /src/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist ./dist
COPY --from=build --chown=root:root /src/bin ./bin
RUN ln -s /opt/pms/bin/pms-telemetry.js /usr/local/bin/pms-telemetry && chmod 0755 /opt/pms/bin/*.js
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["pms-telemetry"]
CMD ["serve"]
