/**
 * End to end over TCP: the `forwardAuth` strategy with a real HTTP authorization service on port
 * 0. The service sees the original method, URI, host and the chosen client headers (never the
 * body); its 2xx lets the request through with its identity headers copied upstream (client-sent
 * copies dropped), its 401/403 reach the client as GW_AUTH_UNAUTHORIZED/GW_AUTH_FORBIDDEN, and
 * anything else (5xx, redirect, no identity, timeout, down) is a 503 with Retry-After. Every
 * refusal leaves the upstream untouched.
 */
import t, { type Test } from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { defineRoute, loadConfig } from 'portcullis'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { closedPort, rawUpstream, startUpstream, type Upstream } from '../helpers/upstream.js'

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
  t.throws(() => loadConfig({ FORWARD_AUTH_URL: 'ftp://authz/check' }), { code: 'GW_CONFIG_INVALID', message: /FORWARD_AUTH_URL: must be an http/ })
  t.throws(() => loadConfig({ INTROSPECTION_URL: 'http://idp/introspect' }), { code: 'GW_CONFIG_INVALID', message: /set all three or none/ })
})
