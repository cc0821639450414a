# syntax=docker/dockerfile:1
#
# Intent Bus in a container (docs/DEPLOYMENT.md):
#
#   docker build -t intent-bus .
#   docker run -p 8080:8080 -v intent-bus-data:/data intent-bus
#
# The image runs `intent-bus serve` as the unprivileged `node` user, listening on 0.0.0.0:8080,
# with its SQLite database in the /data volume (or on PostgreSQL with BUS_DATABASE_URL).
# Other commands of the CLI run with the same image: `docker run --rm intent-bus --help`.
#
# Every stage starts from the same base, so the native better-sqlite3 addon compiled in
# `deps` matches the glibc and the Node ABI of the runtime stage.
ARG NODE_IMAGE=node:20-bookworm-slim

# --- toolchain: a C++ toolchain for node-gyp, used when no prebuilt better-sqlite3 fits ---
FROM ${NODE_IMAGE} AS toolchain
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Only the manifests (and the small bin launchers npm links): this layer's cache survives
# source changes.
COPY package.json package-lock.json ./
COPY packages/protocol/package.json packages/protocol/
COPY packages/sdk/package.json packages/sdk/
COPY packages/server/package.json packages/server/
COPY packages/server/bin packages/server/bin
COPY packages/cli/package.json packages/cli/
COPY packages/cli/bin packages/cli/bin

# --- deps: production dependencies only, with better-sqlite3 built for this base ---
FROM toolchain AS deps
# --ignore-scripts: the root `prepare` script runs tsc, which is a dev dependency. The one
# install script the runtime needs is better-sqlite3's, run by the rebuild (a prebuilt
# binary, or a compile). Then only the addon is kept: its sources and the intermediate
# objects of a compile are ~26 MB the runtime never reads.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm rebuild better-sqlite3 \
  && cd node_modules/better-sqlite3 \
  && mv build/Release/better_sqlite3.node /tmp/ \
  && rm -rf build deps src \
  && mkdir -p build/Release \
  && mv /tmp/better_sqlite3.node build/Release/ \
  && npm cache clean --force

# --- build: every dependency, then the TypeScript build (tsc -b) ---
FROM toolchain AS build
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.base.json ./
COPY packages ./packages
RUN npx tsc -b

# --- runtime: Node, the production node_modules, the compiled packages; nothing else ---
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    BUS_HOST=0.0.0.0 \
    BUS_PORT=8080 \
    BUS_DB_PATH=/data/bus.db
WORKDIR /app
# The application stays owned by root (read-only for the bus); only /data is writable.
COPY --from=deps /app/package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=deps /app/packages ./packages
COPY --from=build /app/packages/protocol/dist ./packages/protocol/dist
COPY --from=build /app/packages/sdk/dist ./packages/sdk/dist
COPY --from=build /app/packages/server/dist ./packages/server/dist
COPY --from=build /app/packages/cli/dist ./packages/cli/dist
COPY packages/server/dashboard ./packages/server/dashboard
COPY deploy/healthcheck.mjs ./deploy/healthcheck.mjs
# The data folder: the SQLite file, its WAL, and secrets.json when the bus generates them.
RUN mkdir -p /data && chown node:node /data && chmod 700 /data
USER node
VOLUME ["/data"]
EXPOSE 8080
# GET /health on this node (no curl in slim images); 503 while the store is unusable.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "/app/deploy/healthcheck.mjs"]
# `intent-bus serve` is the documented way to run the bus (PRODUCT.md); the bus handles
# SIGTERM itself (ends long polls, finishes in-flight requests, closes the store).
# --no-memory-reducer (issue 21, BENCHMARKS.md "Cold start"): without it, V8's full
# collections during a pause in the traffic throw away the optimised code of the request
# path, and the first jobs after it cost about twice the CPU. It must be given to node on
# the command line: set from inside the process it did not hold.
ENTRYPOINT ["node", "--no-memory-reducer", "/app/packages/cli/bin/intent-bus.js"]
CMD ["serve"]
