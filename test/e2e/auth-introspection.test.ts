/**
 * End to end over TCP: opaque bearer tokens from a real OAuth 2 server (oidc-provider), checked
 * by the gateway through RFC 7662 token introspection, configured from the environment. Active
 * tokens reach the upstream with the consumer id; inactive, revoked, expired and unknown ones get
 * 401 and the upstream nothing; results are cached (positive and negative) and concurrent lookups
 * share one call; an endpoint that is down, slow, failing or talking nonsense gives 503 with
 * Retry-After (fail closed), never 500. JWT-shaped tokens go to the `jwt` strategy instead.
 */
import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { createSigner } from 'fast-jwt'
import { defineRoute } from 'portcullis'
import { IntrospectionClient } from '../../plugins/auth/introspection.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { closedPort, rawUpstream, startUpstream, type Upstream } from '../helpers/upstream.js'
import { introspectionEnv, startOidc, type TestOidc } from '../helpers/oidc.js'
import { timeTravel } from '../helpers/time-travel.js'

const JWT_SECRET = 'introspection-test-hs256-secret-0123456789abcdef'

interface Setup { gw: TestGateway, upstream: Upstream }

async function setup (t: Test, idp: TestOidc, env: Record<string, string> = {}): Promise<Setup> {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, {
    env: {
      ...introspectionEnv(idp),
      JWT_SECRET,
      ...env
    },
    routes: [
      defineRoute({ prefix: '/orders', upstream: upstream.url, auth: { strategies: ['introspection'], scopes: ['orders:read'] }, retries: 0 }),
      defineRoute({ prefix: '/admin', upstream: upstream.url, auth: { strategies: ['introspection'], scopes: ['orders:admin'] }, retries: 0 }),
      defineRoute({ prefix: '/mixed', upstream: upstream.url, auth: { strategies: ['jwt', 'introspection'] }, retries: 0 })
    ]
  })
  return { gw, upstream }
}

async function call (url: string, token?: string, headers: Record<string, string> = {}): Promise<{ status: number, body: Record<string, unknown>, headers: Record<string, unknown> }> {
  const res = await request(url, { headers: { ...headers, ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}) } })
  const body = await res.body.json() as Record<string, unknown>
  return { status: res.statusCode, body, headers: res.headers }
}

t.test('an active opaque token passes; the upstream gets the consumer id, strategy and scopes, never a spoof', async (t) => {
  const idp = await startOidc(t, { accessTokenFormat: 'opaque' })
  const { gw, upstream } = await setup(t, idp)
  const token = await idp.getToken('orders:read')
  t.notOk(token.split('.').length === 3, 'the provider issues opaque tokens')
  const ok = await call(`${gw.url}/orders/list`, token, { 'x-consumer-id': 'spoofed', 'x-consumer-strategy': 'jwt' })
  t.equal(ok.status, 200)
  t.equal(upstream.requests.length, 1)
  const seen = upstream.requests[0]?.headers ?? {}
  t.equal(seen['x-consumer-id'], idp.clientId, 'client_id when the token has no sub')
  t.equal(seen['x-consumer-strategy'], 'introspection')
  t.equal(seen['x-consumer-scopes'], 'orders:read')
  t.equal(seen.authorization, undefined, 'the token does not go upstream')
  t.equal(gw.app.portcullisAuth.introspectionCalls(), 1)

  const denied = await call(`${gw.url}/admin/x`, token)
  t.equal(denied.status, 403, 'scopes come from the introspection `scope`')
  t.equal(denied.body.code, 'GW_AUTH_FORBIDDEN')
  t.equal(upstream.requests.length, 1, 'the upstream got nothing more')
  t.notOk(gw.logText().includes(token), 'the token is never logged')
})

t.test('unknown, revoked and expired tokens get 401; the upstream gets nothing', async (t) => {
  const idp = await startOidc(t, { accessTokenFormat: 'opaque', accessTokenTtlS: 120 })
  const { gw, upstream } = await setup(t, idp)

  const unknown = await call(`${gw.url}/orders/x`, 'made-up-opaque-token-0123456789')
  t.equal(unknown.status, 401)
  t.equal(unknown.body.code, 'GW_AUTH_UNAUTHORIZED')
  t.match(unknown.headers['www-authenticate'], /error="invalid_token"/)

  const revoked = await idp.getToken('orders:read')
  await idp.revoke(revoked)
  t.equal((await call(`${gw.url}/orders/x`, revoked)).status, 401, 'revoked (inactive)')

  const expiring = await idp.getToken('orders:read')
  t.equal((await call(`${gw.url}/orders/x`, expiring)).status, 200)
  const travel = timeTravel(t)
  travel(121_000)
  t.equal((await call(`${gw.url}/orders/x`, expiring)).status, 401, 'past exp: the cache entry ended with the token')

  t.equal(upstream.requests.length, 1, 'only the valid call reached the upstream')
  const reasons = gw.logs.filter((l) => l.msg === 'authentication failed').map((l) => l.reason)
  t.ok(reasons.every((r) => typeof r === 'string' && /^[a-z_]+$/.test(r)), 'failures logged as fixed tokens')
  t.ok(reasons.includes('inactive_token'))
})

t.test('cache: a token is introspected once; a bad token is remembered briefly; concurrent lookups share a call', async (t) => {
  const idp = await startOidc(t, { accessTokenFormat: 'opaque' })
  const { gw, upstream } = await setup(t, idp)
  const token = await idp.getToken('orders:read')
  for (let i = 0; i < 3; i++) t.equal((await call(`${gw.url}/orders/${i}`, token)).status, 200)
  t.equal(idp.introspectionCalls(), 1, 'second and third requests served from the cache')

  for (let i = 0; i < 5; i++) t.equal((await call(`${gw.url}/orders/x`, 'random-opaque-token-abcdefghijkl')).status, 401)
  t.equal(idp.introspectionCalls(), 2, 'a refused token is asked about once (negative cache)')

  const fresh = await idp.getToken('orders:read')
  const results = await Promise.all(Array.from({ length: 8 }, async () => await call(`${gw.url}/orders/c`, fresh)))
  t.strictSame(results.map((r) => r.status), Array(8).fill(200))
  t.equal(idp.introspectionCalls(), 3, 'eight concurrent requests with one new token: one call')
  t.equal(upstream.requests.length, 11)
})

t.test('single flight: lookups of one token in flight together make one call', async (t) => {
  const idp = await startOidc(t, { accessTokenFormat: 'opaque' })
  const token = await idp.getToken('orders:read')
  const silent = { warn: () => {} } as unknown as ConstructorParameters<typeof IntrospectionClient>[0]['log']
  const client = new IntrospectionClient({
    url: idp.introspectionUrl,
    clientId: idp.clientId,
    clientSecret: idp.clientSecret,
    issuer: idp.issuer,
    audience: [idp.resource],
    skewMs: 0,
    timeoutMs: 5000,
    cacheTtlMs: 0,
    negativeCacheTtlMs: 0,
    cacheSize: 10,
    log: silent
  })
  t.teardown(async () => { await client.close() })
  const results = await Promise.all(Array.from({ length: 10 }, async () => await client.check(token)))
  t.ok(results.every((r) => 'id' in r && r.id === idp.clientId))
  t.equal(idp.introspectionCalls(), 1)
  t.equal(client.calls, 1)
  await client.check(token)
  t.equal(idp.introspectionCalls(), 2, 'with the cache off, the next lookup asks again')
})

t.test('aud and iss are checked against the configured values', async (t) => {
  const idp = await startOidc(t, { accessTokenFormat: 'opaque' })
  const wrongAud = await setup(t, idp, { INTROSPECTION_AUDIENCE: 'https://other.example' })
  const wrongIss = await setup(t, idp, { INTROSPECTION_ISSUER: 'https://other-issuer.example' })
  const token = await idp.getToken('orders:read')
  t.equal((await call(`${wrongAud.gw.url}/orders/x`, token)).status, 401)
  t.equal((await call(`${wrongIss.gw.url}/orders/x`, token)).status, 401)
  t.equal(wrongAud.upstream.requests.length + wrongIss.upstream.requests.length, 0)
  t.ok(wrongAud.gw.logs.some((l) => l.reason === 'invalid_audience'))
  t.ok(wrongIss.gw.logs.some((l) => l.reason === 'invalid_issuer'))
})

t.test('with jwt and introspection on one route, a JWT-shaped token goes to jwt, anything else to introspection', async (t) => {
  const idp = await startOidc(t, { accessTokenFormat: 'opaque' })
  const { gw, upstream } = await setup(t, idp)
  const jwt = createSigner({ key: JWT_SECRET, algorithm: 'HS256', expiresIn: 60_000 })({ sub: 'jwt-user' })
  const opaque = await idp.getToken('orders:read')
  t.equal((await call(`${gw.url}/mixed/a`, jwt)).status, 200)
  t.equal(upstream.requests[0]?.headers['x-consumer-strategy'], 'jwt')
  t.equal(upstream.requests[0]?.headers['x-consumer-id'], 'jwt-user')
  t.equal(idp.introspectionCalls(), 0, 'the JWT never reached the introspection endpoint')
  t.equal((await call(`${gw.url}/mixed/b`, opaque)).status, 200)
  t.equal(upstream.requests[1]?.headers['x-consumer-strategy'], 'introspection')
  const forged = createSigner({ key: 'another-secret-of-enough-length-0123456789', algorithm: 'HS256' })({ sub: 'x' })
  t.equal((await call(`${gw.url}/mixed/c`, forged)).status, 401, 'a bad JWT fails as a JWT, not via introspection')
  t.equal(idp.introspectionCalls(), 1)
  t.equal(upstream.requests.length, 2)
})

async function failingEndpoint (t: Test, answer: (res: import('node:http').ServerResponse) => void): Promise<string> {
  const server = createServer((req, res) => { req.resume(); req.on('end', () => { answer(res) }) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise<void>((resolve) => { server.close(() => { resolve() }) }) })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/introspect`
}

t.test('endpoint down, slow, 5xx or invalid: 503 with Retry-After, never 500, upstream untouched', async (t) => {
  const idp = await startOidc(t, { accessTokenFormat: 'opaque' })
  const token = await idp.getToken('orders:read')
  const silent = await rawUpstream(t)
  const urls: Record<string, string> = {
    down: `http://127.0.0.1:${await closedPort()}/introspect`,
    timeout: `${silent.url}/introspect`,
    status500: await failingEndpoint(t, (res) => { res.writeHead(500).end('{}') }),
    badJson: await failingEndpoint(t, (res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"active": tru') }),
    noActive: await failingEndpoint(t, (res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"sub":"x"}') })
  }
  for (const [name, url] of Object.entries(urls)) {
    const { gw, upstream } = await setup(t, idp, { INTROSPECTION_URL: url, INTROSPECTION_TIMEOUT_MS: '300' })
    for (let i = 0; i < 2; i++) {
      const res = await call(`${gw.url}/orders/x`, token)
      t.equal(res.status, 503, `${name}: 503`)
      t.equal(res.body.code, 'GW_AUTH_UNAVAILABLE', `${name}: code`)
      t.ok(res.headers['retry-after'] !== undefined, `${name}: Retry-After`)
    }
    t.equal(gw.app.portcullisAuth.introspectionCalls(), 2, `${name}: failures are not cached`)
    t.equal(upstream.requests.length, 0, `${name}: upstream got nothing`)
    t.notOk(gw.logText().includes(token), `${name}: token not logged`)
    t.notOk(gw.logText().includes(idp.clientSecret), `${name}: client secret not logged`)
  }
})
