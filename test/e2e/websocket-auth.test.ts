/**
 * Who may open a WebSocket, end to end over TCP with the `ws` client and a real WebSocket upstream
 * that records every handshake: the upgrade is authenticated like any request, and only then is
 * the upstream handshake made, carrying the verified identity (`x-consumer-*`, and the identity
 * headers a forward-auth service answered with) and none of the client's copies of those names.
 * A refused upgrade (401, 403, an authorization service down: 503) never reaches the upstream.
 * Every strategy is checked: jwt, apiKey, introspection, forwardAuth and mtls (over wss).
 */
import t, { type Test } from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import WebSocket, { type ClientOptions } from 'ws'
import { createSigner } from 'fast-jwt'
import { defineRoute } from 'portcullis'
import { startGateway } from '../helpers/gateway.js'
import { closedPort } from '../helpers/upstream.js'
import { makeCa } from '../helpers/certs.js'
import { wsUpstream } from '../helpers/ws-upstream.js'

const ORIGIN = 'https://app.example.com'
const JWT_SECRET = 'ws-auth-test-secret-0123456789abcdefghijklmnop'
const API_KEY = 'ws-auth-test-key-0123456789abcdef'
const sign = createSigner({ key: JWT_SECRET, algorithm: 'HS256' })
/** Client-sent copies of the names only the gateway may set. */
const SPOOFS = { 'x-consumer-id': 'admin', 'x-consumer-strategy': 'jwt', 'x-consumer-scopes': 'admin' }

interface AuthService { url: string, seen: IncomingMessage[] }

/** A small authorization service on port 0: `decide` answers each check (given its body). */
async function authService (t: Test, decide: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<AuthService> {
  const seen: IncomingMessage[] = []
  const server = createServer((req, res) => {
    seen.push(req)
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString() })
    req.on('end', () => { decide(req, res, body) })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise<void>((resolve) => { server.close(() => { resolve() }) }) })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/check`, seen }
}

/** Allows `Bearer good` (with two identity headers) and `Bearer quiet` (none), 403s `Bearer blocked`, 401s the rest. */
const policy = (req: IncomingMessage, res: ServerResponse): void => {
  const auth = req.headers.authorization
  if (auth === 'Bearer good') res.writeHead(200, { 'x-user-id': 'alice', 'x-user-email': 'alice@example.com', 'x-tenant': 'acme', 'x-other': 'not-copied' }).end()
  else if (auth === 'Bearer quiet') res.writeHead(200, { 'x-user-id': 'bob' }).end()
  else if (auth === 'Bearer blocked') res.writeHead(403).end('no')
  else res.writeHead(401, { 'www-authenticate': 'Basic realm="internal"' }).end('who are you')
}

interface Opened { status: number, protocol: string, body: Record<string, unknown>, headers: Record<string, unknown>, reply: string }

/** Opens a WebSocket; on 101 sends one message and returns the reply, else the refusal. */
async function open (url: string, opts: { protocols?: string[], headers?: Record<string, string>, tls?: ClientOptions } = {}): Promise<Opened> {
  return await new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts.protocols ?? [], { headers: opts.headers ?? {}, ...opts.tls })
    ws.once('open', () => { ws.send('hi') })
    ws.once('message', (m) => {
      resolve({ status: 101, protocol: ws.protocol, body: {}, headers: {}, reply: m.toString() })
      ws.close()
    })
    ws.once('unexpected-response', (_req, res) => {
      let text = ''
      res.on('data', (c: Buffer) => { text += c.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, protocol: '', body: text === '' ? {} : JSON.parse(text) as Record<string, unknown>, headers: res.headers, reply: '' }) })
    })
    ws.once('error', reject)
  })
}

t.test('forwardAuth on an upgrade: the identity headers go into the upstream handshake, client spoofs never do', async (t) => {
  const up = await wsUpstream(t)
  const svc = await authService(t, policy)
  const gw = await startGateway(t, {
    env: { FORWARD_AUTH_URL: svc.url, FORWARD_AUTH_RESPONSE_HEADERS: 'x-user-email,x-tenant' },
    routes: [defineRoute({ prefix: '/ws', upstream: up.url, auth: { strategies: ['forwardAuth'] }, websocket: true })]
  })
  const url = `${gw.url.replace('http:', 'ws:')}/ws/room?x=1`
  // x-tenant is no built-in identity name: only the auth plugin drops the client's copy.
  const spoofs = { ...SPOOFS, 'x-user-id': 'mallory', 'x-user-email': 'mallory@evil.example', 'x-tenant': 'evil' }

  const ok = await open(url, { headers: { authorization: 'Bearer good', cookie: 'sid=1', ...spoofs } })
  t.equal(ok.status, 101)
  t.equal(ok.reply, 'echo:hi', 'the connection is relayed')
  const check = svc.seen[0]
  t.equal(check?.method, 'GET')
  t.equal(check?.headers['x-forwarded-method'], 'GET')
  t.equal(check?.headers['x-forwarded-uri'], '/ws/room?x=1', 'the service sees the handshake\'s URI')
  t.equal(check?.headers.authorization, 'Bearer good')
  t.equal(check?.headers.cookie, 'sid=1')
  t.equal(up.upgrades.length, 1)
  const seen = up.upgrades[0]?.headers ?? {}
  t.equal(seen['x-consumer-id'], 'alice', 'the service\'s identity, not the client\'s')
  t.equal(seen['x-consumer-strategy'], 'forwardAuth')
  t.equal(seen['x-consumer-scopes'], undefined)
  t.equal(seen['x-user-id'], 'alice')
  t.equal(seen['x-user-email'], 'alice@example.com', 'a chosen identity header of the answer')
  t.equal(seen['x-tenant'], 'acme')
  t.equal(seen['x-other'], undefined, 'an answer header not chosen stays out')
  t.equal(seen.authorization, undefined, 'the credential is not forwarded')
  t.equal(up.upgrades[0]?.url, '/room?x=1')

  // The service names the caller but sends no x-tenant or x-user-email: the client's copies must not stand in.
  const quiet = await open(url, { headers: { authorization: 'Bearer quiet', ...spoofs } })
  t.equal(quiet.status, 101)
  const second = up.upgrades[1]?.headers ?? {}
  t.equal(second['x-consumer-id'], 'bob')
  t.equal(second['x-user-id'], 'bob')
  t.equal(second['x-tenant'], undefined, 'a client-sent identity header never reaches the upstream')
  t.equal(second['x-user-email'], undefined)
  t.equal(second['x-consumer-scopes'], undefined)
  t.equal(up.upgrades.length, 2)
})

t.test('a refused upgrade never reaches the upstream: 401 and 403 reach the client, a service down fails closed', async (t) => {
  const up = await wsUpstream(t)
  const svc = await authService(t, policy)
  const gw = await startGateway(t, {
    env: { FORWARD_AUTH_URL: svc.url },
    routes: [defineRoute({ prefix: '/ws', upstream: up.url, auth: { strategies: ['forwardAuth'] }, websocket: true })]
  })
  const url = `${gw.url.replace('http:', 'ws:')}/ws/room`

  const denied = await open(url, { headers: { authorization: 'Bearer wrong', ...SPOOFS } })
  t.equal(denied.status, 401)
  t.equal(denied.body.code, 'GW_AUTH_UNAUTHORIZED')
  t.equal(denied.headers['www-authenticate'], 'Bearer realm="portcullis"', 'the gateway\'s challenge, not the service\'s')
  const none = await open(url)
  t.equal(none.status, 401, 'no credential at all')
  const forbidden = await open(url, { headers: { authorization: 'Bearer blocked' } })
  t.equal(forbidden.status, 403)
  t.equal(forbidden.body.code, 'GW_AUTH_FORBIDDEN')
  t.equal(svc.seen.length, 3, 'the service decided each of them')
  t.equal(up.upgrades.length, 0, 'the upstream saw no handshake')

  const down = await startGateway(t, {
    env: { FORWARD_AUTH_URL: `http://127.0.0.1:${await closedPort()}/check`, FORWARD_AUTH_TIMEOUT_MS: '2000' },
    routes: [defineRoute({ prefix: '/ws', upstream: up.url, auth: { strategies: ['forwardAuth'] }, websocket: true })]
  })
  const unavailable = await open(`${down.url.replace('http:', 'ws:')}/ws/room`, { headers: { authorization: 'Bearer good' } })
  t.equal(unavailable.status, 503, 'fail closed')
  t.equal(unavailable.body.code, 'GW_AUTH_UNAVAILABLE')
  t.ok(unavailable.headers['retry-after'] !== undefined)
  t.equal(up.upgrades.length, 0, 'the upstream saw no handshake')
})

t.test('bearerProtocol: a browser\'s token offer is shown to the forward-auth service as Authorization: Bearer', async (t) => {
  const up = await wsUpstream(t)
  const svc = await authService(t, policy)
  const gw = await startGateway(t, {
    env: { FORWARD_AUTH_URL: svc.url, FORWARD_AUTH_RESPONSE_HEADERS: 'x-tenant' },
    routes: [defineRoute({ prefix: '/live', upstream: up.url, auth: { strategies: ['forwardAuth'] }, websocket: { bearerProtocol: true, allowedOrigins: [ORIGIN] } })]
  })
  const url = `${gw.url.replace('http:', 'ws:')}/live/feed`
  const ok = await open(url, { protocols: ['chat', 'portcullis.bearer.good'], headers: { origin: ORIGIN } })
  t.equal(ok.status, 101)
  t.equal(ok.protocol, 'chat')
  t.equal(svc.seen[0]?.headers.authorization, 'Bearer good', 'the service sees the offered token')
  const seen = up.upgrades[0]?.headers ?? {}
  t.equal(seen['x-consumer-id'], 'alice')
  t.equal(seen['x-tenant'], 'acme')
  t.equal(seen['sec-websocket-protocol'], 'chat', 'the token offer never goes upstream')
  t.equal(seen.authorization, undefined)

  const calls = svc.seen.length
  const twice = await open(url, { protocols: ['chat', 'portcullis.bearer.good'], headers: { origin: ORIGIN, authorization: 'Bearer quiet' } })
  t.equal(twice.status, 401, 'a token offer and an Authorization header: ambiguous, refused')
  const denied = await open(url, { protocols: ['chat', 'portcullis.bearer.wrong'], headers: { origin: ORIGIN } })
  t.equal(denied.status, 401)
  t.equal(svc.seen.length, calls + 1, 'the ambiguous one was refused before the service was asked')
  t.equal(up.upgrades.length, 1, 'the upstream saw only the allowed handshake')
})

t.test('every strategy: the upstream handshake carries the verified identity and none of the client\'s', async (t) => {
  const up = await wsUpstream(t)
  const svc = await authService(t, policy)
  const introspection = await authService(t, (_req, res, body) => {
    const active = new URLSearchParams(body).get('token') === 'opaque-good-token'
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(active ? { active: true, sub: 'intro-user', scope: 'chat:read', exp: Math.floor(Date.now() / 1000) + 300 } : { active: false }))
  })
  const ca = makeCa('WebSocket client CA')
  const serverCert = ca.issue('localhost', { server: true, san: 'DNS:localhost,IP:127.0.0.1' })
  const alice = ca.issue('cert-user')
  const stranger = makeCa('Other CA').issue('cert-user')
  const gw = await startGateway(t, {
    env: {
      TLS_CERT_FILE: serverCert.certFile,
      TLS_KEY_FILE: serverCert.keyFile,
      TLS_CLIENT_CA_FILE: ca.certFile,
      JWT_SECRET,
      API_KEYS: `key-user:${API_KEY}`,
      INTROSPECTION_URL: introspection.url,
      INTROSPECTION_CLIENT_ID: 'gateway',
      INTROSPECTION_CLIENT_SECRET: 'introspection-client-secret-0123456789',
      FORWARD_AUTH_URL: svc.url
    },
    routes: (['jwt', 'apiKey', 'introspection', 'forwardAuth', 'mtls'] as const).map((s) =>
      defineRoute({ prefix: `/${s}`, upstream: up.url, auth: { strategies: [s] }, websocket: true }))
  })
  const base = `wss://127.0.0.1:${gw.port}`
  const tls = (cert?: { cert: string, key: string }): ClientOptions => ({ ca: ca.cert, ...(cert !== undefined ? { cert: cert.cert, key: cert.key } : {}) })
  const jwt = sign({ sub: 'jwt-user', scope: 'chat:write', exp: Math.floor(Date.now() / 1000) + 300 })
  const cases = [
    { strategy: 'jwt', good: { headers: { authorization: `Bearer ${jwt}` } }, bad: { headers: { authorization: `Bearer ${jwt}x` } }, id: 'jwt-user', scopes: 'chat:write' },
    { strategy: 'apiKey', good: { headers: { 'x-api-key': API_KEY } }, bad: { headers: { 'x-api-key': `${API_KEY}x` } }, id: 'key-user', scopes: undefined },
    { strategy: 'introspection', good: { headers: { authorization: 'Bearer opaque-good-token' } }, bad: { headers: { authorization: 'Bearer opaque-bad-token' } }, id: 'intro-user', scopes: 'chat:read' },
    { strategy: 'forwardAuth', good: { headers: { authorization: 'Bearer good' } }, bad: { headers: { authorization: 'Bearer wrong' } }, id: 'alice', scopes: undefined },
    { strategy: 'mtls', good: { headers: {}, cert: alice }, bad: { headers: {}, cert: stranger }, id: 'cert-user', scopes: undefined }
  ] as const
  for (const c of cases) {
    const before = up.upgrades.length
    const refused = await open(`${base}/${c.strategy}/x`, { headers: { ...c.bad.headers, ...SPOOFS }, tls: tls('cert' in c.bad ? c.bad.cert : undefined) })
    t.equal(refused.status, 401, `${c.strategy}: a bad credential is refused`)
    t.equal(up.upgrades.length, before, `${c.strategy}: the refused handshake never reached the upstream`)
    const ok = await open(`${base}/${c.strategy}/x`, { headers: { ...c.good.headers, ...SPOOFS }, tls: tls('cert' in c.good ? c.good.cert : undefined) })
    t.equal(ok.status, 101, `${c.strategy}: allowed`)
    t.equal(ok.reply, 'echo:hi')
    const seen = up.upgrades.at(-1)?.headers ?? {}
    t.equal(up.upgrades.length, before + 1)
    t.equal(seen['x-consumer-id'], c.id, `${c.strategy}: the verified caller`)
    t.equal(seen['x-consumer-strategy'], c.strategy)
    t.equal(seen['x-consumer-scopes'], c.scopes, `${c.strategy}: the credential's scopes, never the client's`)
    t.equal(seen.authorization, undefined)
    t.equal(seen['x-api-key'], undefined)
  }
})
