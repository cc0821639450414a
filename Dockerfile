# The bus in a container: `docker build -t intent-bus .` then
# `docker run -p 8080:8080 -v intent-bus-data:/data intent-bus` (first-run secrets are
# printed to the log once and kept in the volume).
FROM node:20-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 builds its native module when no prebuilt one fits.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY packages ./packages
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app /app
RUN mkdir -p /data && chown node:node /data
USER node
ENV NODE_ENV=production BUS_HOST=0.0.0.0 BUS_PORT=8080 BUS_DB_PATH=/data/bus.db
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:8080/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
CMD ["node", "packages/server/dist/main.js"]
