// Benchmark scenarios: each starts one proxy on `port` in front of the shared upstream.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createHmac } from 'node:crypto'

export const BENCH_JWT_SECRET = 'bench-secret-0123456789abcdef0123456789abcdef'
export const BENCH_API_KEY = 'bench-key-0123456789abcdef'

/** An HS256 token valid for a day (built here so the bench needs no extra package). */
export function benchToken (claims = {}) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  const head = b64({ alg: 'HS256', typ: 'JWT' })
  const body = b64({ sub: 'bench-user', scope: 'read write', iat: now, exp: now + 86400, ...claims })
  const sig = createHmac('sha256', BENCH_JWT_SECRET).update(`${head}.${body}`).digest('base64url')
  return `${head}.${body}.${sig}`
}

function stopper (child) {
  return async () => {
    if (child.exitCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }
}

function writeRoutes (root, name, route, prefixes) {
  const dir = join(root, 'bench/.routes', name)
  mkdirSync(dir, { recursive: true })
  for (let i = 0; i < prefixes; i++) {
    const prefix = prefixes === 1 ? '/api' : `/api${i}`
    writeFileSync(join(dir, `r${i}.mjs`), `import { defineRoute } from 'portcullis'\nexport default defineRoute({ prefix: '${prefix}', upstream: process.env.BENCH_UPSTREAM, ...${JSON.stringify(route)} })\n`)
  }
  return dir
}

function portcullis (name, route, env = {}, prefixes = 1) {
  return async ({ port, upstream, root, pinned }) => {
    const dir = writeRoutes(root, name, route, prefixes)
    const child = pinned(0, process.execPath, [join(root, 'dist/src/server.js')], {
      NODE_ENV: 'production',
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ROUTES_DIR: dir,
      BENCH_UPSTREAM: upstream,
      JWT_SECRET: BENCH_JWT_SECRET,
      API_KEYS: `bench:${BENCH_API_KEY}`,
      IP_RATE_LIMIT_MAX: '100000000',
      RATE_LIMIT_MAX: '100000000',
      ...env
    })
    return { pid: child.pid, stop: stopper(child) }
  }
}

function nodeScript (script, env = {}) {
  return async ({ port, upstream, root, pinned }) => {
    const child = pinned(0, process.execPath, [join(root, script)], { PORT: String(port), UPSTREAM: upstream, ...env })
    return { pid: child.pid, stop: stopper(child) }
  }
}

const off = { auth: false, rateLimit: false, inspect: false }
const jwtRl = { auth: { strategies: ['jwt'] }, rateLimit: { max: 100000000, timeWindow: '1 minute' }, inspect: false }
const jwtRlInspect = { ...jwtRl, inspect: { mode: 'block' } }

export const scenarios = [
  {
    name: 'direct',
    title: 'direct to upstream',
    start: async ({ upstreamPort }) => ({ pid: undefined, stop: async () => {}, port: upstreamPort }),
    direct: true
  },
  { name: 'bare-http-proxy', title: 'bare @fastify/http-proxy', start: nodeScript('bench/servers/bare-proxy.mjs') },
  { name: 'portcullis-proxy', title: 'Portcullis (1) proxy only, access log at info', start: portcullis('proxy', off), readyPath: '/healthz' },
  {
    name: 'portcullis-proxy-metrics',
    title: 'Portcullis (1) with metrics (ADMIN_PORT) and OTEL tracing hooks on',
    start: async (ctx) => portcullis('proxymetrics', off, { ADMIN_PORT: '0', OTEL_ENABLED: 'true' })(ctx),
    readyPath: '/healthz'
  },
  {
    name: 'bare-http-proxy-1000',
    title: 'bare @fastify/http-proxy, 1,000 prefixes',
    start: nodeScript('bench/servers/bare-proxy.mjs', { PREFIXES: '1000' }),
    lua: 'prefixes.lua',
    wrkEnv: { PREFIXES: '1000' }
  },
  {
    name: 'portcullis-proxy-1000',
    title: 'Portcullis proxy only, 1,000 prefixes',
    start: portcullis('proxy1000', off, {}, 1000),
    lua: 'prefixes.lua',
    wrkEnv: { PREFIXES: '1000' },
    readyPath: '/healthz'
  },
  {
    name: 'portcullis-jwt-rl',
    title: 'Portcullis (2) JWT HS256 + rate limit',
    start: portcullis('jwtrl', jwtRl),
    headers: { authorization: `Bearer ${benchToken()}` },
    readyPath: '/healthz'
  },
  {
    name: 'portcullis-jwt-rl-inspect',
    title: 'Portcullis (3) JWT + rate limit + URL/query/header inspection',
    start: portcullis('jwtrlinspect', jwtRlInspect),
    path: '/api/items?page=2&sort=name&q=blue+shoes',
    headers: { authorization: `Bearer ${benchToken()}` },
    readyPath: '/healthz'
  },
  {
    name: 'portcullis-jwt-rl-redis',
    title: 'Portcullis (5) JWT + rate limit, Redis store',
    start: portcullis('jwtrlredis', jwtRl, { REDIS_URL: 'redis://127.0.0.1:6379' }),
    headers: { authorization: `Bearer ${benchToken()}` },
    readyPath: '/healthz'
  }
]
