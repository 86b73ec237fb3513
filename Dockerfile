# syntax=docker/dockerfile:1
# Portcullis gateway image: multi-stage, production dependencies only, non-root, drains on SIGTERM.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY lib ./lib
COPY src ./src
COPY plugins ./plugins
COPY routes ./routes
RUN npm run build

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
COPY --chown=root:root plugins/inspect/rules ./plugins/inspect/rules
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
# node runs as PID 1 child of tini (compose `init: true`) and handles SIGTERM itself: it stops
# accepting, finishes in-flight requests and exits within DRAIN_TIMEOUT_MS. Same node flags as
# `npm start` (package.json, where README explains them): 4 MB young-generation semi-spaces, and
# undici's HTTP parser (WebAssembly) left on V8's baseline compiler. Each keeps peak memory
# lower (~20 MB and ~30 MB) at the same throughput.
CMD ["node", "--max-semi-space-size=4", "--liftoff-only", "dist/src/server.js"]
