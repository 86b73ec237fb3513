// Benchmark scenarios: each starts one proxy on `port` in front of the shared upstream.
//
// A scenario: { name, title, start(ctx) => { pid, stop, port? }, headers?, path?, lua?, wrkEnv?,
// readyPath?, needs?, checks?, tls? }. `checks` are requests sent once before the warm-up
// ({ method?, path?, headers?, body?, status, noCert? }); a mismatch is reported in the notes column.
// `tls: true`: the proxy listens on HTTPS with the bench certificates (benchCerts) and is loaded
// by bench/tls-load.mjs instead of wrk, presenting the bench client certificate (see the mTLS
// scenarios below). The order of this list is the order of the results table.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { createHmac } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { descendants } from './proc.mjs'

export const BENCH_JWT_SECRET = 'bench-secret-0123456789abcdef0123456789abcdef'
export const BENCH_API_KEY = 'bench-key-0123456789abcdef'
export const NGINX = '/usr/sbin/nginx'
/** The opaque bearer token of the introspection and forward-auth scenarios (not shaped like a JWT). */
export const BENCH_OPAQUE_TOKEN = 'bench-opaque-7Hq2Zr9Lk4XwPc3Vn8Jd'

/** An HS256 token valid for a day (built here so the bench needs no extra package). */
export function benchToken (claims = {}) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  const head = b64({ alg: 'HS256', typ: 'JWT' })
  const body = b64({ sub: 'bench-user', scope: 'read write', iat: now, exp: now + 86400, ...claims })
  const sig = createHmac('sha256', BENCH_JWT_SECRET).update(`${head}.${body}`).digest('base64url')
  return `${head}.${body}.${sig}`
}

/** The body that bench/post-json.lua POSTs (its `wrk.body = [==[...]==]` long string). */
export function postJsonBody () {
  const lua = readFileSync(fileURLToPath(new URL('post-json.lua', import.meta.url)), 'utf8')
  const m = /^wrk\.body = \[==\[([\s\S]*?)\]==\]$/m.exec(lua)
  if (m === null || m[1].length === 0) throw new Error('bench/post-json.lua: no wrk.body = [==[...]==] line')
  return m[1]
}

function stopper (child) {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    // A cluster primary's workers (and any other descendants) go too, each by its pid.
    const tree = descendants(child.pid)
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    for (const pid of tree) { try { process.kill(pid, 'SIGKILL') } catch {} }
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

/** The node flags of `npm start` (package.json `node <flags> dist/src/server.js`): the bench runs the gateway as users do. */
function startNodeFlags (root) {
  const start = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts.start
  const words = start.split(' ')
  if (words[0] !== 'node' || words.at(-1) !== 'dist/src/server.js') throw new Error(`package.json scripts.start is not "node [flags] dist/src/server.js": ${start}`)
  return words.slice(1, -1)
}

/** Portcullis from dist/ with `route` on /api (or /api0../apiN-1); `core` is taskset's list ('0,1'). */
function portcullis (name, route, env = {}, prefixes = 1, core = 0) {
  return async ({ port, upstream, root, pinned }) => {
    const dir = writeRoutes(root, name, route, prefixes)
    const child = pinned(core, process.execPath, [...startNodeFlags(root), join(root, 'dist/src/server.js')], {
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

/**
 * The API keys of the key-count scenarios: `count` keys `bench-key-<7 digits>-0123456789abcdef`
 * (the spelling bench/api-keys.lua asks with) for 1,000 consumers, in an API_KEYS_FILE.
 */
function apiKeysFile (root, count) {
  const file = join(root, 'bench/.routes', `api-keys-${count}.txt`)
  mkdirSync(join(root, 'bench/.routes'), { recursive: true })
  const lines = new Array(count)
  for (let i = 0; i < count; i++) lines[i] = `c${i % 1000}:${apiKey(i)}`
  writeFileSync(file, lines.join('\n') + '\n')
  return file
}
const apiKey = (i) => `bench-key-${String(i).padStart(7, '0')}-0123456789abcdef`

/** Portcullis (1) with API-key authentication, `count` keys loaded, requests spread over all of them. */
function portcullisApiKeys (name, count) {
  return async (ctx) => await portcullis(name, apiKeyOnly, { API_KEYS_FILE: apiKeysFile(ctx.root, count) })(ctx)
}

function nodeScript (script, env = {}) {
  return async ({ port, upstream, root, pinned }) => {
    const child = pinned(0, process.execPath, [join(root, script)], { PORT: String(port), UPSTREAM: upstream, ...env })
    return { pid: child.pid, stop: stopper(child) }
  }
}

async function freePort () {
  return await new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) })
  })
}

/**
 * bench/servers/auth-stub.mjs (the introspection endpoint and forward-auth service) on core 1,
 * beside the upstream and wrk: an external service, not part of the proxy under test.
 */
async function authStub (root, pinned) {
  const port = await freePort()
  const child = pinned(1, process.execPath, [join(root, 'bench/servers/auth-stub.mjs')], { PORT: String(port), BENCH_TOKEN: BENCH_OPAQUE_TOKEN })
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/ready`)
      await r.arrayBuffer()
      return { url: `http://127.0.0.1:${port}`, stop: stopper(child) }
    } catch { await new Promise((resolve) => setTimeout(resolve, 50)) }
  }
  await stopper(child)()
  throw new Error('bench/servers/auth-stub.mjs never answered')
}

/** Portcullis (1) with `route`, beside an auth stub whose base URL `env(url)` turns into variables. */
function portcullisWithAuthStub (name, route, env) {
  return async (ctx) => {
    const stub = await authStub(ctx.root, ctx.pinned)
    try {
      const gw = await portcullis(name, route, env(stub.url))(ctx)
      return { pid: gw.pid, stop: async () => { await gw.stop(); await stub.stop() } }
    } catch (err) {
      await stub.stop()
      throw err
    }
  }
}

let certs
/**
 * The TLS files of the mTLS pair, made once per run with the openssl CLI under bench/.routes/tls:
 * a CA (P-256), a server certificate for localhost/127.0.0.1 and a client certificate (CN
 * bench-client), both issued by it.
 */
export function benchCerts (root) {
  const dir = join(root, 'bench/.routes/tls')
  if (certs !== undefined && existsSync(certs.ca)) return certs
  mkdirSync(dir, { recursive: true })
  const f = (name) => join(dir, name)
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  const run = (args) => execFileSync('openssl', args, { stdio: 'ignore' })
  run(['req', '-x509', ...ec, '-subj', '/CN=Bench CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-days', '2', '-keyout', f('ca.key'), '-out', f('ca.pem')])
  for (const [name, cn, ext] of [['server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth'], ['client', 'bench-client', 'extendedKeyUsage=clientAuth']]) {
    writeFileSync(f(`${name}.ext`), `basicConstraints=CA:FALSE\n${ext}\n`)
    run(['req', '-new', ...ec, '-subj', `/CN=${cn}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`)])
    run(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`)])
  }
  certs = { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') }
  return certs
}

/**
 * Portcullis (1) on HTTPS with `route`: the bench server certificate, and the bench CA as
 * TLS_CLIENT_CA_FILE (request mode), so both scenarios of the mTLS pair make the same handshake
 * with the same client certificate; only the route's strategy differs.
 */
function portcullisTls (name, route, env = {}) {
  return async (ctx) => {
    const c = benchCerts(ctx.root)
    return await portcullis(name, route, { TLS_CERT_FILE: c.serverCert, TLS_KEY_FILE: c.serverKey, TLS_CLIENT_CA_FILE: c.ca, ...env })(ctx)
  }
}

/**
 * nginx in the foreground as one process (master_process off: the pid is the worker, so its CPU
 * time is the proxy's), config, pid, lock and temp files under bench/.nginx/<port>/.
 */
function nginx () {
  return async ({ port, upstreamPort, root, pinned }) => {
    const dir = join(root, 'bench/.nginx', String(port))
    mkdirSync(join(dir, 'tmp'), { recursive: true })
    const conf = `# generated by bench/scenarios.mjs
worker_processes 1;
master_process off;
pid ${dir}/nginx.pid;
lock_file ${dir}/nginx.lock;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  keepalive_timeout 60s;
  keepalive_requests 1000000;
  upstream bench_upstream {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${port};
    location /api/ {
      proxy_pass http://bench_upstream/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    location = /healthz { return 200 "ok\\n"; }
  }
}
`
    writeFileSync(join(dir, 'nginx.conf'), conf)
    const child = pinned(0, NGINX, ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;'], {})
    return { pid: child.pid, stop: stopper(child) }
  }
}

const off = { auth: false, rateLimit: false, inspect: false }
const jwtRl = { auth: { strategies: ['jwt'] }, rateLimit: { max: 100000000, timeWindow: '1 minute' }, inspect: false }
const jwtOnly = { ...jwtRl, rateLimit: false }
const apiKeyOnly = { ...off, auth: { strategies: ['apiKey'] } }
const introspectionOnly = { ...off, auth: { strategies: ['introspection'] } }
const forwardAuthOnly = { ...off, auth: { strategies: ['forwardAuth'] } }
const mtlsOnly = { ...off, auth: { strategies: ['mtls'] } }
const opaque = () => ({ authorization: `Bearer ${BENCH_OPAQUE_TOKEN}` })
/** Policy checks for the opaque-token scenarios: 401 without a token or with another, 200 with it. */
const opaqueChecks = [{ status: 401 }, { status: 401, headers: { authorization: `Bearer ${BENCH_OPAQUE_TOKEN}x` } }, { status: 200, headers: opaque() }]
const rlOnly = { ...off, rateLimit: { max: 100000000, timeWindow: '1 minute' } }
const jwtRlInspect = { ...jwtRl, inspect: { mode: 'block' } }
const jwtRlInspectBody = { ...jwtRl, inspect: { mode: 'block', body: true } }
/** (6): (4) with the shop's API contract (bench/fixtures/openapi/shop.yaml, relative to the route file). */
const jwtRlInspectBodyContract = { ...jwtRlInspectBody, openapi: { spec: '../../fixtures/openapi/shop.yaml' } }
const redis = { REDIS_URL: 'redis://127.0.0.1:6379' }
const bearer = () => ({ authorization: `Bearer ${benchToken()}` })
/** Policy checks for the JWT scenarios: 401 without a token or with a bad one, 200 with one. */
const jwtChecks = (extra = {}) => [
  { status: 401, ...extra, headers: { ...extra.headers } },
  { status: 401, ...extra, headers: { ...extra.headers, authorization: `Bearer ${benchToken()}x` } },
  { status: 200, ...extra, headers: { ...extra.headers, ...bearer() } }
]
/** The requests of (3) (with unique-query.lua, the URL wrk is given): (2) runs on the same ones. */
const QUERY_PATH = '/api/items?page=2&sort=name&q=blue+shoes'
const UNIQUE_QUERY_PATH = '/api/items?page=1&sort=name&q=blue+shoes+1'
const postJson = () => ({ method: 'POST', path: '/api/orders', headers: { 'content-type': 'application/json' }, body: postJsonBody() })
/** The requests of (6): the order of post-json.lua with a query string the contract declares. */
const ORDER_PATH = '/api/orders?channel=web&dryRun=false&expand=items,totals'
const postOrder = (extra = {}) => ({ ...postJson(), path: ORDER_PATH, ...extra, headers: { ...postJson().headers, ...bearer(), ...extra.headers } })

export const scenarios = [
  {
    name: 'direct',
    title: 'direct to upstream',
    start: async ({ upstreamPort }) => ({ pid: undefined, stop: async () => {}, port: upstreamPort }),
    direct: true
  },
  { name: 'nginx', title: 'nginx proxy_pass', needs: 'nginx', start: nginx(), readyPath: '/healthz', checks: [{ status: 200 }] },
  { name: 'bare-http-proxy', title: 'bare @fastify/http-proxy', start: nodeScript('bench/servers/bare-proxy.mjs') },
  { name: 'fast-gateway', title: 'fast-gateway proxy only', start: nodeScript('bench/servers/fast-gateway.mjs'), checks: [{ status: 200 }] },
  {
    name: 'fast-gateway-jwt-rl',
    title: 'fast-gateway JWT HS256 (fast-jwt) + in-memory rate limit per consumer',
    start: nodeScript('bench/servers/fast-gateway.mjs', { POLICIES: 'jwt-rl', JWT_SECRET: BENCH_JWT_SECRET, RATE_LIMIT_MAX: '100000000' }),
    headers: bearer(),
    checks: jwtChecks()
  },
  { name: 'portcullis-proxy', title: 'Portcullis (1) proxy only, access log at info', start: portcullis('proxy', off), readyPath: '/healthz' },
  {
    name: 'portcullis-jwt',
    title: 'Portcullis (1) + JWT HS256 only (no route rate limit)',
    start: portcullis('jwt', jwtOnly),
    headers: bearer(),
    readyPath: '/healthz',
    checks: jwtChecks()
  },
  {
    name: 'portcullis-rl',
    title: 'Portcullis (1) + in-memory route rate limit only (public route, keyed by IP)',
    start: portcullis('rl', rlOnly),
    readyPath: '/healthz'
  },
  {
    name: 'portcullis-rl-clients',
    title: 'Portcullis (1) + route rate limit (keyed by IP), 100,000 distinct clients (x-forwarded-for)',
    start: portcullis('rlclients', rlOnly, { TRUST_PROXY: '127.0.0.1' }),
    readyPath: '/healthz',
    lua: 'distinct-clients.lua',
    wrkEnv: { CLIENTS: '100000' }
  },
  {
    name: 'portcullis-jwt-rl',
    title: 'Portcullis (2) JWT HS256 + rate limit',
    start: portcullis('jwtrl', jwtRl),
    headers: bearer(),
    readyPath: '/healthz',
    checks: jwtChecks()
  },
  {
    // (2) on the requests of (3): what inspection costs is (3) against this, the same chain and
    // the same requests without it (the query is parsed, logged and sent upstream either way).
    name: 'portcullis-jwt-rl-query',
    title: 'Portcullis (2) on the requests of (3) (query string, no inspection)',
    start: portcullis('jwtrlquery', jwtRl),
    path: QUERY_PATH,
    headers: bearer(),
    readyPath: '/healthz'
  },
  {
    name: 'portcullis-jwt-rl-query-unique',
    title: 'Portcullis (2) on the requests of (3) with new query values (no inspection)',
    start: portcullis('jwtrlqueryunique', jwtRl),
    path: UNIQUE_QUERY_PATH,
    lua: 'unique-query.lua',
    headers: bearer(),
    readyPath: '/healthz'
  },
  {
    name: 'portcullis-jwt-rl-inspect',
    title: 'Portcullis (3) JWT + rate limit + URL/query/header inspection',
    start: portcullis('jwtrlinspect', jwtRlInspect),
    path: QUERY_PATH,
    headers: bearer(),
    readyPath: '/healthz'
  },
  {
    name: 'portcullis-jwt-rl-inspect-unique',
    title: 'Portcullis (3) with new query values on every request (inspection cache misses)',
    start: portcullis('jwtrlinspectunique', jwtRlInspect),
    path: UNIQUE_QUERY_PATH,
    lua: 'unique-query.lua',
    headers: bearer(),
    readyPath: '/healthz'
  },
  {
    name: 'portcullis-jwt-rl-inspect-body',
    title: 'Portcullis (4) = (3) + JSON body inspection of a 2 KiB body',
    start: portcullis('jwtrlinspectbody', jwtRlInspectBody),
    path: '/api/orders',
    lua: 'post-json.lua',
    headers: bearer(),
    readyPath: '/healthz',
    checks: [{ status: 200, ...postJson(), headers: { ...postJson().headers, ...bearer() } }]
  },
  {
    name: 'portcullis-jwt-rl-inspect-body-unique',
    title: 'Portcullis (4) with a new order on every request (inspection cache misses)',
    start: portcullis('jwtrlinspectbodyunique', jwtRlInspectBody),
    path: '/api/orders',
    lua: 'post-json-unique.lua',
    headers: bearer(),
    readyPath: '/healthz',
    checks: [{ status: 200, ...postJson(), headers: { ...postJson().headers, ...bearer() } }]
  },
  {
    // (4) on the requests of (6): what the contract costs is (6) against this, the same chain,
    // body buffering and requests without it.
    name: 'portcullis-jwt-rl-inspect-body-query',
    title: 'Portcullis (4) on the requests of (6) (2 KiB JSON order and a query string, no contract)',
    start: portcullis('jwtrlinspectbodyquery', jwtRlInspectBody),
    path: ORDER_PATH,
    lua: 'post-json.lua',
    headers: bearer(),
    readyPath: '/healthz',
    checks: [postOrder({ status: 200 }), postOrder({ status: 200, body: '{}' })]
  },
  {
    name: 'portcullis-contract',
    title: 'Portcullis (6) = (4) + API contract (OpenAPI 3.0, block mode): operation, bearer requirement, query and the order\'s schema',
    start: portcullis('contract', jwtRlInspectBodyContract),
    path: ORDER_PATH,
    lua: 'post-json.lua',
    headers: bearer(),
    readyPath: '/healthz',
    // The contract is on: the same requests pass, an order it does not describe is refused.
    checks: [postOrder({ status: 200 }), postOrder({ status: 400, body: '{}' }), postOrder({ status: 400, path: '/api/orders?channel=fax' })]
  },
  {
    // (4) and (6) with a new order on every request (post-json-unique.lua): real traffic, where
    // the inspection cache answers for few of a body's values, so each request costs (4) more.
    name: 'portcullis-jwt-rl-inspect-body-query-unique',
    title: 'Portcullis (4) on the requests of (6) with a new order on every request (no contract)',
    start: portcullis('jwtrlinspectbodyqueryunique', jwtRlInspectBody),
    path: ORDER_PATH,
    lua: 'post-json-unique.lua',
    headers: bearer(),
    readyPath: '/healthz',
    checks: [postOrder({ status: 200 })]
  },
  {
    name: 'portcullis-contract-unique',
    title: 'Portcullis (6) with a new order on every request',
    start: portcullis('contractunique', jwtRlInspectBodyContract),
    path: ORDER_PATH,
    lua: 'post-json-unique.lua',
    headers: bearer(),
    readyPath: '/healthz',
    checks: [postOrder({ status: 200 }), postOrder({ status: 400, body: '{}' })]
  },
  {
    name: 'portcullis-jwt-rl-redis',
    title: 'Portcullis (5) JWT + rate limit, Redis store',
    start: portcullis('jwtrlredis', jwtRl, redis),
    headers: bearer(),
    readyPath: '/healthz'
  },
  {
    name: 'portcullis-proxy-metrics',
    title: 'Portcullis (1) with Prometheus metrics on (ADMIN_PORT)',
    start: async (ctx) => portcullis('proxymetrics', off, { ADMIN_PORT: '0' })(ctx),
    readyPath: '/healthz'
  },
  {
    name: 'portcullis-proxy-otel',
    title: 'Portcullis (1) with metrics and OpenTelemetry (@fastify/otel, no SDK: no-op tracer)',
    start: async (ctx) => portcullis('proxyotel', off, { ADMIN_PORT: '0', OTEL_ENABLED: 'true' })(ctx),
    readyPath: '/healthz'
  },
  {
    name: 'portcullis-apikey-10',
    title: 'Portcullis (1) + API-key authentication, 10 keys, requests spread over them',
    start: portcullisApiKeys('apikey10', 10),
    readyPath: '/healthz',
    lua: 'api-keys.lua',
    wrkEnv: { KEYS: '10' },
    checks: [{ status: 401 }, { status: 401, headers: { 'x-api-key': `${apiKey(3)}x` } }, { status: 200, headers: { 'x-api-key': apiKey(3) } }]
  },
  {
    name: 'portcullis-apikey-1m',
    title: 'Portcullis (1) + API-key authentication, 1,000,000 keys, requests spread over them',
    start: portcullisApiKeys('apikey1m', 1_000_000),
    readyPath: '/healthz',
    readySeconds: 60,
    lua: 'api-keys.lua',
    wrkEnv: { KEYS: '1000000' },
    checks: [{ status: 401 }, { status: 401, headers: { 'x-api-key': `${apiKey(999_999)}x` } }, { status: 200, headers: { 'x-api-key': apiKey(999_999) } }]
  },
  // The cost of each auth strategy, each against portcullis-jwt (the TARGETS rows "... / JWT"):
  // the same proxy-only chain (no rate limit, no inspection), one credential per request.
  {
    name: 'portcullis-introspection',
    title: 'Portcullis (1) + token introspection (RFC 7662 stub on core 1; steady state = cache hit, one call per token and TTL)',
    start: portcullisWithAuthStub('introspection', introspectionOnly, (url) => ({
      INTROSPECTION_URL: `${url}/introspect`,
      INTROSPECTION_CLIENT_ID: 'bench-gateway',
      INTROSPECTION_CLIENT_SECRET: 'bench-introspection-Wq8Lz3Rk5Tn9Vb2Hx6Pj'
    })),
    headers: opaque(),
    readyPath: '/healthz',
    checks: opaqueChecks
  },
  {
    name: 'portcullis-forwardauth',
    title: 'Portcullis (1) + forward auth (stub service on core 1; decision cache off, the default: one call per request)',
    start: portcullisWithAuthStub('forwardauth', forwardAuthOnly, (url) => ({ FORWARD_AUTH_URL: `${url}/check` })),
    headers: opaque(),
    readyPath: '/healthz',
    checks: opaqueChecks
  },
  {
    name: 'portcullis-forwardauth-cached',
    title: 'Portcullis (1) + forward auth with the decision cache on (60 s; steady state = cache hit, one call per check and TTL)',
    start: portcullisWithAuthStub('forwardauthcached', forwardAuthOnly, (url) => ({ FORWARD_AUTH_URL: `${url}/check`, FORWARD_AUTH_CACHE_TTL_MS: '60000' })),
    headers: opaque(),
    readyPath: '/healthz',
    checks: opaqueChecks
  },
  // The mTLS pair. wrk cannot present a client certificate, so both scenarios are loaded by
  // bench/tls-load.mjs (undici, 50 keep-alive connections, pinned to core 1 like wrk) over the
  // same HTTPS listener setup, presenting the same client certificate: the ratio is what the
  // mtls strategy costs per request against a JWT on the same TLS connections (handshakes happen
  // once per connection). Their req/s are not comparable with the wrk rows.
  {
    name: 'portcullis-tls-jwt',
    title: 'Portcullis (1) + JWT HS256 over TLS, client certificate presented but unused (Node load generator)',
    start: portcullisTls('tlsjwt', jwtOnly),
    tls: true,
    headers: bearer(),
    readyPath: '/healthz',
    checks: jwtChecks()
  },
  {
    name: 'portcullis-mtls',
    title: 'Portcullis (1) + mTLS client certificate (TLS_CLIENT_CA_FILE, subject CN) over TLS (Node load generator)',
    start: portcullisTls('mtls', mtlsOnly),
    tls: true,
    readyPath: '/healthz',
    checks: [{ status: 401, noCert: true }, { status: 200 }]
  },
  {
    name: 'bare-http-proxy-1000',
    title: 'bare @fastify/http-proxy, 1,000 prefixes',
    start: nodeScript('bench/servers/bare-proxy.mjs', { PREFIXES: '1000' }),
    lua: 'prefixes.lua',
    wrkEnv: { PREFIXES: '1000' }
  },
  {
    name: 'fastify-prefixes-1',
    title: 'Fastify answering itself (no proxy), 1 prefix, requests made by the 1,000-prefix Lua script',
    start: nodeScript('bench/servers/fastify-prefixes.mjs', { PREFIXES: '1' }),
    lua: 'prefixes.lua',
    wrkEnv: { PREFIXES: '1' }
  },
  {
    name: 'fastify-prefixes-1000',
    title: 'Fastify answering itself (no proxy), 1,000 prefixes',
    start: nodeScript('bench/servers/fastify-prefixes.mjs', { PREFIXES: '1000' }),
    lua: 'prefixes.lua',
    wrkEnv: { PREFIXES: '1000' }
  },
  {
    name: 'fastify-flat-1',
    title: 'Fastify answering itself, 1 prefix, routes on the root context (route-level hook), 1,000-prefix Lua script',
    start: nodeScript('bench/servers/fastify-prefixes.mjs', { PREFIXES: '1', FLAT: '1' }),
    lua: 'prefixes.lua',
    wrkEnv: { PREFIXES: '1' }
  },
  {
    name: 'fastify-flat-1000',
    title: 'Fastify answering itself, 1,000 prefixes, routes on the root context (route-level hooks)',
    start: nodeScript('bench/servers/fastify-prefixes.mjs', { PREFIXES: '1000', FLAT: '1' }),
    lua: 'prefixes.lua',
    wrkEnv: { PREFIXES: '1000' }
  },
  {
    name: 'portcullis-proxy-lua',
    title: 'Portcullis proxy only, 1 prefix, requests made by the 1,000-prefix Lua script',
    start: portcullis('proxylua', off),
    lua: 'prefixes.lua',
    wrkEnv: { PREFIXES: '1' },
    readyPath: '/healthz'
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
    name: 'portcullis-jwt-rl-redis-1w-unpinned',
    title: 'Portcullis (5) with 1 process (Redis store), unpinned: cores 0,1, which wrk and the upstream share',
    start: portcullis('jwtrlredis1w', jwtRl, { ...redis, WORKERS: '1' }, 1, '0,1'),
    headers: bearer(),
    readyPath: '/healthz'
  },
  {
    name: 'portcullis-jwt-rl-redis-2w',
    title: 'Portcullis (5) with 2 worker processes (WORKERS=2, Redis store), unpinned',
    start: portcullis('jwtrlredis2w', jwtRl, { ...redis, WORKERS: '2' }, 1, '0,1'),
    headers: bearer(),
    readyPath: '/healthz'
  }
]
