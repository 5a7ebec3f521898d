# syntax=docker/dockerfile:1
# The gatehouse server (`gatehouse serve`, what `npm start` runs), in two stages: the build
# stage compiles both packages (scripts/build.mjs: the library to packages/gatehouse/dist, its
# Lua scripts generated into it first, then the server to packages/server/dist); the runtime stage has
# the production dependencies and the two dist/ folders only, and runs as `node`.
# For reproducible builds, pin the base image by digest (node:24-bookworm-slim@sha256:...).

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.base.json ./
COPY packages/gatehouse/package.json packages/gatehouse/tsconfig.build.json ./packages/gatehouse/
COPY packages/server/package.json packages/server/tsconfig.build.json ./packages/server/
RUN npm ci
COPY scripts ./scripts
COPY packages/gatehouse/src ./packages/gatehouse/src
COPY packages/server/src ./packages/server/src
RUN npm run build

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/gatehouse/package.json ./packages/gatehouse/
COPY packages/server/package.json ./packages/server/
RUN npm ci --omit=dev \
 && npm cache clean --force
COPY --from=build /app/packages/gatehouse/dist ./packages/gatehouse/dist
COPY --from=build /app/packages/server/dist ./packages/server/dist
# DATA_DIR (./data) for PGlite when DATABASE_URL is unset: writable by `node` only. With several
# instances use PostgreSQL (DATABASE_URL) instead: each container's PGlite is its own database.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 3000
# Ready = Redis and the database answer a read/write probe. Orchestrators that restart unhealthy
# containers should probe /health instead (see docs/deployment.md).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# The process handles SIGTERM itself: it drains in-flight requests (at most 25 s), then closes
# Redis and the database. Give it a longer stop timeout than that.
CMD ["node", "packages/server/dist/cli/main.js", "serve"]
