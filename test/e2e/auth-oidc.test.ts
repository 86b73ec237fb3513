/**
 * End to end over TCP with a real OAuth 2 / OIDC server (oidc-provider): client_credentials
 * access tokens (JWT, RFC 9068) verified through the provider's JWKS, key rotation followed
 * without a gateway restart, and unknown-kid floods that do not hammer the JWKS endpoint.
 *
 * The chain is a bare Fastify with the gateway's error handler, gateway-auth, the proxy runtime
 * and defineRoute() routes in front of a recording upstream (the same order as src/app.ts).
 */
import t, { type Test } from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import Fastify from 'fastify'
import { request } from 'undici'
import { createSigner } from 'fast-jwt'
import { defineRoute } from 'portcullis'
import { gatewayErrorHandler } from '../../src/errors.js'
import { authPlugin, type AuthPluginOptions } from '../../plugins/auth/index.js'
import { proxyPlugin } from '../../plugins/proxy/index.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { startOidc, type TestOidc } from '../helpers/oidc.js'
import { timeTravel } from '../helpers/time-travel.js'

interface Chain { url: string, upstream: Upstream }

async function startChain (t: Test, idp: TestOidc, opts: AuthPluginOptions = {}): Promise<Chain> {
  const upstream = await startUpstream(t)
  const app = Fastify({ logger: false })
  app.setErrorHandler(gatewayErrorHandler)
  await app.register(authPlugin, { jwksUrl: idp.jwksUrl, issuer: idp.issuer, audience: [idp.resource], ...opts })
  await app.register(proxyPlugin, {})
  await app.register(defineRoute({ prefix: '/orders', upstream: upstream.url, auth: { scopes: ['orders:read'] }, retries: 0 }))
  await app.register(defineRoute({ prefix: '/admin', upstream: upstream.url, auth: { scopes: ['orders:admin'] }, retries: 0 }))
  t.teardown(async () => { await app.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const addr = app.server.address()
  return { url: `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`, upstream }
}

async function call (chain: Chain, path: string, token?: string, headers: Record<string, string> = {}): Promise<{ status: number, body: Record<string, unknown>, challenge: unknown }> {
  const res = await request(`${chain.url}${path}`, {
    headers: { ...headers, ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}) }
  })
  const body = await res.body.json() as Record<string, unknown>
  return { status: res.statusCode, body, challenge: res.headers['www-authenticate'] }
}

t.test('a client_credentials token from a real IdP passes; the upstream sees the consumer id', async (t) => {
  const idp = await startOidc(t)
  const chain = await startChain(t, idp)
  const token = await idp.getToken('orders:read')
  const ok = await call(chain, '/orders/list?x=1', token, { 'x-consumer-id': 'spoofed' })
  t.equal(ok.status, 200)
  t.equal(chain.upstream.requests.length, 1)
  const seen = chain.upstream.requests[0]?.headers
  t.equal(seen?.['x-consumer-id'], idp.clientId, 'x-consumer-id is the token sub, set by the gateway')
  t.equal(seen?.['x-consumer-scopes'], 'orders:read')

  const forbidden = await call(chain, '/admin/x', token)
  t.equal(forbidden.status, 403, 'a missing scope answers 403')
  t.equal(forbidden.body.code, 'GW_AUTH_FORBIDDEN')
  t.equal(forbidden.challenge, 'Bearer realm="portcullis", error="insufficient_scope", scope="orders:admin"')

  const [h, p, s] = token.split('.') as [string, string, string]
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>
  const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, scope: 'orders:read orders:admin' })).toString('base64url')}.${s}`
  for (const [name, tok] of [['none', undefined], ['tampered', tampered], ['truncated', `${h}.${p}`], ['signature only', s]] as Array<[string, string | undefined]>) {
    const r = await call(chain, '/admin/x', tok)
    t.equal(r.status, 401, `${name}: 401`)
    t.strictSame(r.body, { statusCode: 401, code: 'GW_AUTH_UNAUTHORIZED', error: 'Unauthorized', message: 'Unauthorized' })
  }
  t.equal(chain.upstream.requests.length, 1, 'no rejected request reached the upstream')
})

t.test('key rotation is followed through the JWKS without a restart', async (t) => {
  const idp = await startOidc(t)
  const chain = await startChain(t, idp)
  const travel = timeTravel(t)
  const first = await idp.getToken('orders:read')
  t.equal((await call(chain, '/orders/a', first)).status, 200, 'token of the first key')
  t.equal(idp.jwksFetches(), 1, 'one JWKS fetch at startup')

  // Graceful rotation: the provider signs with a new key and still publishes the old one.
  await idp.rotateKeys({ keepPrevious: true })
  const second = await idp.getToken('orders:read')
  t.equal((await call(chain, '/orders/b', second)).status, 401, 'inside the 30 s cooldown the new kid is not fetched')
  t.equal(idp.jwksFetches(), 1)
  travel(30_001)
  t.equal((await call(chain, '/orders/b', second)).status, 200, 'after the cooldown the new key is fetched')
  t.equal(idp.jwksFetches(), 2)
  t.equal((await call(chain, '/orders/a', first)).status, 200, 'the old key is still published: old tokens pass')

  // Hard rotation: the old key disappears from the JWKS.
  await idp.rotateKeys({ keepPrevious: false })
  travel(30_001)
  const third = await idp.getToken('orders:read')
  t.equal((await call(chain, '/orders/c', third)).status, 200, 'third key accepted')
  t.equal((await call(chain, '/orders/a', first)).status, 401, 'a token of a removed key is refused (cache dropped on change)')
  t.equal((await call(chain, '/orders/b', second)).status, 401, 'and so is the second key')
  t.equal(chain.upstream.requests.length, 4, 'exactly the accepted calls reached the upstream')
})

t.test('an unknown-kid flood does not hammer the JWKS endpoint', async (t) => {
  const idp = await startOidc(t)
  const chain = await startChain(t, idp, { jwksCooldownMs: 30_000 })
  const travel = timeTravel(t)
  const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const pem = attacker.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  const forged = Array.from({ length: 200 }, (_, i) => createSigner({ key: pem, algorithm: 'RS256', kid: `flood-${i}` })({
    sub: 'attacker', scope: 'orders:read', iss: idp.issuer, aud: idp.resource, exp: Math.floor(Date.now() / 1000) + 60
  }))
  const statuses = new Set<number>()
  for (let i = 0; i < forged.length; i += 50) {
    const batch = await Promise.all(forged.slice(i, i + 50).map(async (tok) => await call(chain, '/orders/x', tok)))
    for (const r of batch) statuses.add(r.status)
  }
  t.strictSame([...statuses], [401], 'every forged token is refused')
  t.equal(idp.jwksFetches(), 1, '200 unknown kids inside the cooldown: no JWKS fetch beyond the startup one')
  travel(30_001)
  await Promise.all(forged.slice(0, 50).map(async (tok) => await call(chain, '/orders/x', tok)))
  t.equal(idp.jwksFetches(), 2, 'after the cooldown 50 concurrent unknown kids cost one fetch')
  t.equal(chain.upstream.requests.length, 0, 'nothing reached the upstream')
  t.equal((await call(chain, '/orders/ok', await idp.getToken('orders:read'))).status, 200, 'legitimate tokens still pass')
})
