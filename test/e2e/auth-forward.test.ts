/**
 * End to end over TCP: the `forwardAuth` strategy with a real HTTP authorization service on port
 * 0. The service sees the original method, URI, host and the chosen client headers (never the
 * body); its 2xx lets the request through with its identity headers copied upstream (client-sent
 * copies dropped), its 401/403 reach the client as GW_AUTH_UNAUTHORIZED/GW_AUTH_FORBIDDEN, and
 * anything else (5xx, redirect, no identity, timeout, down) is a 503 with Retry-After. Every
 * refusal leaves the upstream untouched. With FORWARD_AUTH_CACHE_TTL_MS, identical checks are
 * answered from the decision cache (identity headers included), any difference is a new call,
 * failures and `no-store` answers are never kept, and a reload starts with an empty cache.
 */
import t, { type Test } from 'tap'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { defineRoute, loadConfig, start } from 'portcullis'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { closedPort, rawUpstream, startUpstream, type Upstream } from '../helpers/upstream.js'
import { waitFor } from '../helpers/wait-for.js'

const API_KEY = 'forward-auth-test-key-0123456789abcdef'

interface AuthService { url: string, seen: IncomingMessage[], bodies: number[] }

/** A small authorization service: `decide` answers each check. */
async function startAuthService (t: Test, decide: (req: IncomingMessage, res: ServerResponse) => void): Promise<AuthService> {
  const seen: IncomingMessage[] = []
  const bodies: number[] = []
  const server = createServer((req, res) => {
    seen.push(req)
    let n = 0
    req.on('data', (c: Buffer) => { n += c.length })
    req.on('end', () => { bodies.push(n); decide(req, res) })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise<void>((resolve) => { server.close(() => { resolve() }) }) })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/check`, seen, bodies }
}

/** Allows `Bearer good`, 403s `Bearer blocked`, 401s the rest. */
const policyService = (req: IncomingMessage, res: ServerResponse): void => {
  const auth = req.headers.authorization
  if (auth === 'Bearer good') {
    res.writeHead(200, { 'x-user-id': 'alice', 'x-user-email': 'alice@example.com', 'x-user-groups': 'admins', 'x-other': 'not-copied' }).end()
  } else if (auth === 'Bearer blocked') {
    res.writeHead(403).end('no')
  } else {
    res.writeHead(401, { 'www-authenticate': 'Basic realm="internal"' }).end('who are you')
  }
}

interface Setup { gw: TestGateway, upstream: Upstream }

async function setup (t: Test, serviceUrl: string, env: Record<string, string> = {}): Promise<Setup> {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { FORWARD_AUTH_URL: serviceUrl, FORWARD_AUTH_RESPONSE_HEADERS: 'x-user-email,x-user-groups', API_KEYS: `svc:${API_KEY}`, ...env },
    routes: [
      defineRoute({ prefix: '/app', upstream: upstream.url, auth: { strategies: ['forwardAuth'] }, retries: 0 }),
      defineRoute({ prefix: '/either', upstream: upstream.url, auth: { strategies: ['apiKey', 'forwardAuth'] }, retries: 0 }),
      defineRoute({ prefix: '/both', upstream: upstream.url, auth: { strategies: ['apiKey', 'forwardAuth'], relation: 'all' }, retries: 0 })
    ]
  })
  return { gw, upstream }
}

async function call (url: string, opts: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<{ status: number, body: Record<string, unknown>, headers: Record<string, unknown> }> {
  const res = await request(url, { method: (opts.method ?? 'GET') as 'GET', headers: opts.headers ?? {}, ...(opts.body !== undefined ? { body: opts.body } : {}) })
  const text = await res.body.text()
  return { status: res.statusCode, body: text === '' ? {} : JSON.parse(text) as Record<string, unknown>, headers: res.headers }
}

t.test('allowed: the service sees the original request; identity headers go upstream, spoofs never do', async (t) => {
  const svc = await startAuthService(t, policyService)
  const { gw, upstream } = await setup(t, svc.url)
  const res = await call(`${gw.url}/app/orders/7?q=1`, {
    method: 'POST',
    headers: { authorization: 'Bearer good', cookie: 'sid=abc', 'x-user-id': 'mallory', 'x-user-email': 'mallory@evil', 'x-user-groups': 'root', 'x-private': 'secret', 'content-type': 'application/json' },
    body: '{"a":1}'
  })
  t.equal(res.status, 200)
  const check = svc.seen[0]
  t.equal(check?.method, 'GET', 'the check is a GET')
  t.equal(svc.bodies[0], 0, 'no body goes to the service')
  t.equal(check?.headers['x-forwarded-method'], 'POST')
  t.equal(check?.headers['x-forwarded-uri'], '/app/orders/7?q=1')
  t.equal(check?.headers['x-forwarded-host'], `127.0.0.1:${gw.port}`)
  t.equal(check?.headers.authorization, 'Bearer good')
  t.equal(check?.headers.cookie, 'sid=abc')
  t.equal(check?.headers['x-private'], undefined, 'only the chosen headers are copied')
  t.equal(check?.headers['x-user-id'], undefined, 'a client-sent identity header does not reach the service either')

  t.equal(upstream.requests.length, 1)
  const seen = upstream.requests[0]?.headers ?? {}
  t.equal(seen['x-consumer-id'], 'alice')
  t.equal(seen['x-consumer-strategy'], 'forwardAuth')
  t.equal(seen['x-user-id'], 'alice', 'the consumer header comes from the service')
  t.equal(seen['x-user-email'], 'alice@example.com')
  t.equal(seen['x-user-groups'], 'admins')
  t.equal(seen['x-other'], undefined, 'unlisted response headers stay behind')
  t.equal(upstream.requests[0]?.body.toString(), '{"a":1}', 'the body still reaches the upstream')
  t.equal(gw.app.portcullisAuth.forwardAuthCalls(), 1)
})

t.test('a service that allows without some listed header: the client-sent copy is still dropped', async (t) => {
  const svc = await startAuthService(t, (_req, res) => { res.writeHead(204, { 'x-user-id': 'bob' }).end() })
  const { gw, upstream } = await setup(t, svc.url)
  t.equal((await call(`${gw.url}/app/x`, { headers: { 'x-user-groups': 'admins', 'x-user-email': 'x@evil' } })).status, 200)
  const seen = upstream.requests[0]?.headers ?? {}
  t.equal(seen['x-consumer-id'], 'bob')
  t.equal(seen['x-user-groups'], undefined)
  t.equal(seen['x-user-email'], undefined)
})

t.test('401 and 403 from the service reach the client as the gateway\'s own; the upstream gets nothing', async (t) => {
  const svc = await startAuthService(t, policyService)
  const { gw, upstream } = await setup(t, svc.url)
  const denied = await call(`${gw.url}/app/x`, { headers: { authorization: 'Bearer bad' } })
  t.equal(denied.status, 401)
  t.equal(denied.body.code, 'GW_AUTH_UNAUTHORIZED')
  t.match(denied.headers['www-authenticate'], /^Bearer realm="portcullis"/, 'the gateway\'s challenge, not the service\'s')
  t.notOk(JSON.stringify(denied.body).includes('who are you'), 'the service\'s body is not relayed')
  const forbidden = await call(`${gw.url}/app/x`, { headers: { authorization: 'Bearer blocked' } })
  t.equal(forbidden.status, 403)
  t.equal(forbidden.body.code, 'GW_AUTH_FORBIDDEN')
  t.equal(upstream.requests.length, 0)
  t.ok(gw.logs.some((l) => l.reason === 'forward_auth_denied'))
  t.ok(gw.logs.some((l) => l.reason === 'forward_auth_forbidden'))
  t.notOk(gw.logText().includes('Bearer bad'), 'credentials are not logged')
})

t.test('with other strategies: `any` skips the call when an API key passes; `all` needs both', async (t) => {
  const svc = await startAuthService(t, policyService)
  const { gw, upstream } = await setup(t, svc.url)
  t.equal((await call(`${gw.url}/either/x`, { headers: { 'x-api-key': API_KEY } })).status, 200)
  t.equal(upstream.requests[0]?.headers['x-consumer-id'], 'svc')
  t.equal(svc.seen.length, 0, 'no call when a valid API key already identifies the caller')
  t.equal((await call(`${gw.url}/either/x`, { headers: { authorization: 'Bearer good' } })).status, 200)
  t.equal(upstream.requests[1]?.headers['x-consumer-id'], 'alice')
  t.equal((await call(`${gw.url}/both/x`, { headers: { authorization: 'Bearer good' } })).status, 401, 'all: the API key is missing')
  t.equal((await call(`${gw.url}/both/x`, { headers: { 'x-api-key': API_KEY, authorization: 'Bearer bad' } })).status, 401, 'all: the service refuses')
  const both = await call(`${gw.url}/both/x`, { headers: { 'x-api-key': API_KEY, authorization: 'Bearer good' } })
  t.equal(both.status, 200)
  t.equal(upstream.requests[2]?.headers['x-consumer-id'], 'svc', 'all: the API key names the caller')
  t.equal(upstream.requests[2]?.headers['x-user-email'], 'alice@example.com', 'all: the service\'s identity headers still go upstream')
  t.equal(upstream.requests.length, 3)
})

t.test('timeout, down, 5xx, redirect or no identity: 503 with Retry-After, upstream untouched', async (t) => {
  const silent = await rawUpstream(t)
  const cases: Record<string, string> = {
    timeout: `${silent.url}/check`,
    down: `http://127.0.0.1:${await closedPort()}/check`,
    status500: (await startAuthService(t, (_req, res) => { res.writeHead(500).end() })).url,
    redirect: (await startAuthService(t, (_req, res) => { res.writeHead(302, { location: 'http://127.0.0.1:1/login' }).end() })).url,
    noIdentity: (await startAuthService(t, (_req, res) => { res.writeHead(200).end() })).url,
    unsafeIdentity: (await startAuthService(t, (_req, res) => { res.writeHead(200, { 'x-user-id': ' ' }).end() })).url
  }
  for (const [name, url] of Object.entries(cases)) {
    const { gw, upstream } = await setup(t, url, { FORWARD_AUTH_TIMEOUT_MS: '300' })
    const res = await call(`${gw.url}/app/x`, { headers: { authorization: 'Bearer good' } })
    t.equal(res.status, 503, `${name}: 503`)
    t.equal(res.body.code, 'GW_AUTH_UNAVAILABLE', `${name}: code`)
    t.ok(res.headers['retry-after'] !== undefined, `${name}: Retry-After`)
    t.equal(upstream.requests.length, 0, `${name}: upstream got nothing`)
  }
})

t.test('configuration: forwardAuth on a route needs FORWARD_AUTH_URL; identity headers the gateway owns are refused', async (t) => {
  const upstream = await startUpstream(t)
  await t.rejects(startGateway(t, {
    env: { API_KEYS: `svc:${API_KEY}` },
    routes: [defineRoute({ prefix: '/app', upstream: upstream.url, auth: { strategies: ['forwardAuth'] } })]
  }), { code: 'GW_CONFIG_INVALID', message: /FORWARD_AUTH_URL/ })
  await t.rejects(startGateway(t, { env: { FORWARD_AUTH_URL: 'http://127.0.0.1:1/check', FORWARD_AUTH_RESPONSE_HEADERS: 'x-consumer-id' } }), { code: 'GW_CONFIG_INVALID', message: /x-consumer-id/ })
  // A client's copy of a field the gateway writes on the check would stand in for the gateway's.
  for (const name of ['x-forwarded-for', 'x-forwarded-uri', 'host', 'forwarded', 'content-length', 'transfer-encoding']) {
    await t.rejects(startGateway(t, { env: { FORWARD_AUTH_URL: 'http://127.0.0.1:1/check', FORWARD_AUTH_REQUEST_HEADERS: `authorization,${name}` } }), { code: 'GW_CONFIG_INVALID', message: new RegExp(`forwardAuthRequestHeaders: "${name}"`) }, name)
  }
  t.throws(() => loadConfig({ FORWARD_AUTH_URL: 'ftp://authz/check' }), { code: 'GW_CONFIG_INVALID', message: /FORWARD_AUTH_URL: must be an http/ })
  t.throws(() => loadConfig({ INTROSPECTION_URL: 'http://idp/introspect' }), { code: 'GW_CONFIG_INVALID', message: /set all three or none/ })
})

/** policyService, and `Cache-Control: no-store` on every answer about a URI under /app/fresh. */
const cachingService = (req: IncomingMessage, res: ServerResponse): void => {
  if (String(req.headers['x-forwarded-uri']).startsWith('/app/fresh')) res.setHeader('cache-control', 'no-store')
  if (req.headers.authorization === 'Bearer broken') res.writeHead(500).end()
  else policyService(req, res)
}

const CACHE = { FORWARD_AUTH_CACHE_TTL_MS: '60000' }

t.test('cache: identical requests within the TTL make one call; identity headers reach the upstream on every hit', async (t) => {
  const svc = await startAuthService(t, cachingService)
  const { gw, upstream } = await setup(t, svc.url, CACHE)
  const good = { authorization: 'Bearer good', cookie: 'sid=abc' }
  for (let i = 0; i < 3; i++) t.equal((await call(`${gw.url}/app/orders/7?q=1`, { headers: { ...good, 'x-user-email': 'mallory@evil' } })).status, 200)
  t.equal(svc.seen.length, 1, 'three identical requests, one call')
  t.equal(gw.app.portcullisAuth.forwardAuthCalls(), 1)
  t.equal(upstream.requests.length, 3)
  for (const r of upstream.requests) {
    t.equal(r.headers['x-consumer-id'], 'alice')
    t.equal(r.headers['x-user-id'], 'alice')
    t.equal(r.headers['x-user-email'], 'alice@example.com', 'the cached identity, never the client\'s copy')
    t.equal(r.headers['x-user-groups'], 'admins')
  }

  const different: Array<[string, string, { method?: string, headers?: Record<string, string> }]> = [
    ['another cookie', '/app/orders/7?q=1', { headers: { ...good, cookie: 'sid=abd' } }],
    ['no cookie', '/app/orders/7?q=1', { headers: { authorization: 'Bearer good' } }],
    ['another Authorization', '/app/orders/7?q=1', { headers: { ...good, authorization: 'Bearer bad' } }],
    ['another path', '/app/orders/8?q=1', { headers: good }],
    ['another query', '/app/orders/7?q=2', { headers: good }],
    ['another method', '/app/orders/7?q=1', { method: 'DELETE', headers: good }]
  ]
  for (const [name, path, opts] of different) {
    const before = svc.seen.length
    await call(`${gw.url}${path}`, opts)
    t.equal(svc.seen.length, before + 1, `${name}: a new call`)
  }
  t.equal(svc.seen[3]?.headers.authorization, 'Bearer bad')
  t.equal(svc.seen[6]?.headers['x-forwarded-method'], 'DELETE')
  t.equal(upstream.requests.length, 3 + 5, 'the refused one (Bearer bad) never reached the upstream')
})

t.test('cache: denials are kept and never reach the upstream; 503 and no-store answers are never kept', async (t) => {
  const svc = await startAuthService(t, cachingService)
  const { gw, upstream } = await setup(t, svc.url, CACHE)
  for (let i = 0; i < 3; i++) t.equal((await call(`${gw.url}/app/x`, { headers: { authorization: 'Bearer bad' } })).status, 401)
  for (let i = 0; i < 3; i++) t.equal((await call(`${gw.url}/app/x`, { headers: { authorization: 'Bearer blocked' } })).status, 403)
  t.equal(svc.seen.length, 2, 'one call per denial')
  t.equal(upstream.requests.length, 0, 'cached denials reach the upstream no more than fresh ones')
  t.equal(gw.logs.filter((l) => l.reason === 'forward_auth_denied').length, 3, 'every refusal is still logged')

  for (let i = 0; i < 3; i++) {
    const res = await call(`${gw.url}/app/x`, { headers: { authorization: 'Bearer broken' } })
    t.equal(res.status, 503)
    t.equal(res.body.code, 'GW_AUTH_UNAVAILABLE')
  }
  t.equal(svc.seen.length, 5, 'a 5xx is asked about again on every request')
  for (let i = 0; i < 3; i++) t.equal((await call(`${gw.url}/app/fresh`, { headers: { authorization: 'Bearer good' } })).status, 200)
  for (let i = 0; i < 2; i++) t.equal((await call(`${gw.url}/app/fresh`, { headers: { authorization: 'Bearer bad' } })).status, 401)
  t.equal(svc.seen.length, 10, 'no-store answers, allows and denials alike, are not kept')
  t.equal(upstream.requests.length, 3)
})

t.test('cache: an entry ends at the TTL; concurrent identical requests make one call', async (t) => {
  const svc = await startAuthService(t, cachingService)
  const { gw, upstream } = await setup(t, svc.url, { FORWARD_AUTH_CACHE_TTL_MS: '200' })
  const good = { headers: { authorization: 'Bearer good' } }
  t.equal((await call(`${gw.url}/app/ttl`, good)).status, 200)
  await waitFor(async () => (await call(`${gw.url}/app/ttl`, good)).status === 200 && svc.seen.length === 2, { message: 'a new call once the entry ended' })
  t.ok(upstream.requests.every((r) => r.headers['x-consumer-id'] === 'alice'))

  const held: Array<() => void> = []
  const slow = await startAuthService(t, (req, res) => { held.push(() => { policyService(req, res) }) })
  const second = await setup(t, slow.url, CACHE)
  const all = Array.from({ length: 8 }, async () => (await call(`${second.gw.url}/app/together`, good)).status)
  await waitFor(() => held.length === 1, { message: 'the first check reached the service' })
  const connections = async (): Promise<number> => await new Promise((resolve, reject) => {
    second.gw.app.server.getConnections((err, n) => { if (err !== null) reject(err); else resolve(n) })
  })
  // Those not yet waiting on the call when it ends are answered from the cache: one call either way.
  await waitFor(async () => (await connections()) >= 8, { message: 'eight requests at the gateway' })
  for (const answer of held.splice(0)) answer()
  t.strictSame(await Promise.all(all), Array(8).fill(200))
  t.equal(slow.seen.length, 1, 'eight concurrent identical requests, one call')
  t.equal(second.upstream.requests.length, 8)
})

t.test('cache: bounded by FORWARD_AUTH_CACHE_MAX, the least recently used decision goes first', async (t) => {
  const svc = await startAuthService(t, cachingService)
  const { gw } = await setup(t, svc.url, { ...CACHE, FORWARD_AUTH_CACHE_MAX: '2' })
  const good = { headers: { authorization: 'Bearer good' } }
  for (const path of ['a', 'b', 'c', 'c', 'b']) t.equal((await call(`${gw.url}/app/${path}`, good)).status, 200)
  t.equal(svc.seen.length, 3, 'c and b are still held')
  await call(`${gw.url}/app/a`, good)
  t.equal(svc.seen.length, 4, 'a was pushed out by c')
})

t.test('cache: per gateway instance; a configuration reload starts with an empty cache', async (t) => {
  const svc = await startAuthService(t, cachingService)
  const upstream = await startUpstream(t)
  const dir = fileURLToPath(new URL(`../fixtures/.tmp-forward-auth-cache-${process.pid}`, import.meta.url))
  mkdirSync(dir, { recursive: true })
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  writeFileSync(`${dir}/app.mjs`, `import { defineRoute } from 'portcullis'\nexport default defineRoute({ prefix: '/app', upstream: '${upstream.url}', auth: { strategies: ['forwardAuth'] }, retries: 0 })\n`)
  const gateway = await start({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', DEMO_UPSTREAM_PORT: '0', ROUTES_DIR: dir, FORWARD_AUTH_URL: svc.url, ...CACHE })
  t.teardown(async () => { await gateway.close() })
  const good = { headers: { authorization: 'Bearer good' } }
  t.equal((await call(`${gateway.url}/app/x`, good)).status, 200)
  t.equal((await call(`${gateway.url}/app/x`, good)).status, 200)
  t.equal(svc.seen.length, 1)
  t.strictSame(await gateway.reload(), { ok: true, problems: [] })
  t.equal((await call(`${gateway.url}/app/x`, good)).status, 200)
  t.equal(svc.seen.length, 2, 'the new configuration asked the service again')
  t.equal((await call(`${gateway.url}/app/x`, good)).status, 200)
  t.equal(svc.seen.length, 2, 'and keeps its own cache')
  t.equal(upstream.requests.length, 4)
})
