/**
 * gateway-auth with a remote JWKS served by a real HTTP server on 127.0.0.1:0: key selection by
 * kid, pinned algorithms per key, rotation without restart, the unknown-kid cooldown (counted
 * fetches), and an unreachable / broken JWKS failing closed (401, never 500).
 */
import t, { type Test } from 'tap'
import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import { createSigner } from 'fast-jwt'
import { gatewayErrorHandler } from '../../src/errors.js'
import { authPlugin, type AuthPluginOptions } from '../../plugins/auth/index.js'
import { waitFor } from '../helpers/wait-for.js'
import { timeTravel } from '../helpers/time-travel.js'

const now = (): number => Math.floor(Date.now() / 1000)
const rsaA = generateKeyPairSync('rsa', { modulusLength: 2048 })
const rsaB = generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const ed = generateKeyPairSync('ed25519')

function jwk (key: KeyObject, extra: Record<string, unknown>): Record<string, unknown> {
  return { ...key.export({ format: 'jwk' }), use: 'sig', ...extra }
}

function pem (key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }) as string
}

function token (privateKey: KeyObject, algorithm: string, kid: string | undefined, extra: Record<string, unknown> = {}): string {
  const sign = createSigner({ key: pem(privateKey), algorithm: algorithm as 'RS256', ...(kid !== undefined ? { kid } : {}) })
  return sign({ sub: 'svc-1', scope: 'a', exp: now() + 300, ...extra })
}

interface JwksServer {
  url: string
  fetches: () => number
  serve: (doc: unknown, status?: number, delayMs?: number) => void
}

async function jwksServer (t: Test, doc: unknown): Promise<JwksServer> {
  let body: string = JSON.stringify(doc)
  let status = 200
  let delay = 0
  let n = 0
  const server = createServer((_req: IncomingMessage, res: ServerResponse) => {
    n++
    const send = (): void => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(body)
    }
    if (delay > 0) setTimeout(send, delay).unref()
    else send()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
    fetches: () => n,
    serve: (d, s = 200, delayMs = 0) => { body = typeof d === 'string' ? d : JSON.stringify(d); status = s; delay = delayMs }
  }
}

interface Harness { app: FastifyInstance, hits: () => number }

async function build (t: Test, opts: AuthPluginOptions): Promise<Harness> {
  const app = Fastify({ logger: false })
  app.setErrorHandler(gatewayErrorHandler)
  await app.register(authPlugin, opts)
  let hits = 0
  app.get('/r', { config: { auth: { strategies: ['jwt'] } } }, async (request) => {
    hits++
    return { id: request.consumer?.id }
  })
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { app, hits: () => hits }
}

async function status (h: Harness, tok: string): Promise<number> {
  const res = await h.app.inject({ url: '/r', headers: { authorization: `Bearer ${tok}` } })
  if (res.statusCode === 401) {
    if (res.json().code !== 'GW_AUTH_UNAUTHORIZED') throw new Error('unexpected 401 body')
  }
  return res.statusCode
}

t.test('keys are selected by kid with algorithms pinned per key type', async (t) => {
  const srv = await jwksServer(t, {
    keys: [
      jwk(rsaA.publicKey, { kid: 'rsa-a' }),
      jwk(ec.publicKey, { kid: 'ec' }),
      jwk(ed.publicKey, { kid: 'ed' }),
      jwk(rsaB.publicKey, { kid: 'rsa-b-pinned', alg: 'RS256' })
    ]
  })
  const h = await build(t, { jwksUrl: srv.url })
  t.equal(await status(h, token(rsaA.privateKey, 'RS256', 'rsa-a')), 200, 'RS256')
  t.equal(await status(h, token(rsaA.privateKey, 'PS256', 'rsa-a')), 200, 'PS256 with an RSA key without alg')
  t.equal(await status(h, token(ec.privateKey, 'ES256', 'ec')), 200, 'ES256 on P-256')
  t.equal(await status(h, token(ed.privateKey, 'EdDSA', 'ed')), 200, 'EdDSA on Ed25519')
  t.equal(await status(h, token(rsaB.privateKey, 'RS256', 'rsa-b-pinned')), 200, 'RS256 on a key pinned to RS256')
  const before = h.hits()
  t.equal(await status(h, token(rsaB.privateKey, 'PS256', 'rsa-b-pinned')), 401, 'PS256 on a key pinned to RS256')
  t.equal(await status(h, token(rsaA.privateKey, 'RS256', 'ec')), 401, 'RSA signature under the EC kid')
  t.equal(await status(h, token(rsaA.privateKey, 'RS256', 'rsa-b-pinned')), 401, 'right alg, wrong key for the kid')
  t.equal(await status(h, token(rsaA.privateKey, 'RS256', undefined)), 401, 'no kid with several keys')
  const rsaJwkJson = JSON.stringify(jwk(rsaA.publicKey, { kid: 'rsa-a' }))
  const input = `${Buffer.from(JSON.stringify({ alg: 'HS256', kid: 'rsa-a' })).toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'x', exp: now() + 60 })).toString('base64url')}`
  t.equal(await status(h, `${input}.${createHmac('sha256', rsaJwkJson).update(input).digest('base64url')}`), 401, 'HS256 keyed with the JWK JSON')
  t.equal(h.hits(), before, 'no rejected request reached the handler')
  t.equal(srv.fetches(), 1, 'only the startup fetch: every miss fell inside the default cooldown')
})

t.test('symmetric and encryption keys in a JWKS are ignored; a kid-less token works with one key', async (t) => {
  const secret = Buffer.from('jwks-oct-secret-0123456789abcdef0123')
  const srv = await jwksServer(t, {
    keys: [
      { kty: 'oct', k: secret.toString('base64url'), kid: 'oct', alg: 'HS256' },
      jwk(rsaB.publicKey, { kid: 'enc', use: 'enc' }),
      jwk(rsaA.publicKey, { kid: 'only' })
    ]
  })
  const h = await build(t, { jwksUrl: srv.url, jwksCooldownMs: 0 })
  const hs = createSigner({ key: secret.toString(), algorithm: 'HS256', kid: 'oct' })({ sub: 'x', exp: now() + 60 })
  t.equal(await status(h, hs), 401, 'HS256 with the oct key')
  t.equal(await status(h, token(rsaB.privateKey, 'RS256', 'enc')), 401, 'a use=enc key does not verify')
  t.equal(await status(h, token(rsaA.privateKey, 'RS256', undefined)), 200, 'kid-less token, one usable key')
  t.equal(h.hits(), 1)
})

t.test('rotation without restart: new kid fetched, removed key refused, cache dropped', async (t) => {
  const srv = await jwksServer(t, { keys: [jwk(rsaA.publicKey, { kid: 'k1' })] })
  const h = await build(t, { jwksUrl: srv.url, jwksCooldownMs: 1000 })
  const travel = timeTravel(t)
  const oldToken = token(rsaA.privateKey, 'RS256', 'k1')
  t.equal(await status(h, oldToken), 200, 'token of the first key')
  srv.serve({ keys: [jwk(rsaB.publicKey, { kid: 'k2' })] })
  const newToken = token(rsaB.privateKey, 'RS256', 'k2')
  t.equal(await status(h, newToken), 401, 'within the cooldown the new kid is not fetched yet')
  t.equal(srv.fetches(), 1, 'no fetch inside the cooldown')
  travel(1001)
  t.equal(await status(h, newToken), 200, 'after the cooldown the new key is fetched and accepted')
  t.equal(srv.fetches(), 2)
  t.equal(await status(h, oldToken), 401, 'the removed key no longer verifies, even though its token was cached')
})

t.test('a flood of unknown kids costs at most one JWKS fetch per cooldown (single flight)', async (t) => {
  const srv = await jwksServer(t, { keys: [jwk(rsaA.publicKey, { kid: 'k1' })] })
  const h = await build(t, { jwksUrl: srv.url, jwksCooldownMs: 30_000 })
  const travel = timeTravel(t)
  t.equal(srv.fetches(), 1, 'startup fetch')
  const flood = Array.from({ length: 50 }, (_, i) => token(rsaA.privateKey, 'RS256', `made-up-${i}`))
  t.strictSame(new Set(await Promise.all(flood.map(async (tok) => await status(h, tok)))), new Set([401]))
  t.equal(srv.fetches(), 1, 'inside the cooldown: no fetch at all')
  travel(30_001)
  t.strictSame(new Set(await Promise.all(flood.map(async (tok) => await status(h, tok)))), new Set([401]))
  t.equal(srv.fetches(), 2, 'after the cooldown: 50 concurrent unknown kids share one fetch')
  t.equal(await status(h, token(rsaA.privateKey, 'RS256', 'k1')), 200, 'known kid still fine')
  t.equal(h.hits(), 1)
})

t.test('JWKS down, slow, oversized or invalid: start anyway, fail closed, recover', async (t) => {
  const good = { keys: [jwk(rsaA.publicKey, { kid: 'k1' })] }
  const srv = await jwksServer(t, 'oops')
  srv.serve({ error: 'down' }, 503)
  const h = await build(t, { jwksUrl: srv.url, jwksCooldownMs: 0, jwksTimeoutMs: 200, jwksMaxBytes: 4096 })
  const tok = token(rsaA.privateKey, 'RS256', 'k1')
  t.equal(await status(h, tok), 401, 'IdP down: 401, not 500')
  srv.serve('not json')
  t.equal(await status(h, tok), 401, 'non-JSON JWKS: 401')
  srv.serve({ keys: 'nope' })
  t.equal(await status(h, tok), 401, 'keys not an array: 401')
  srv.serve({ keys: [...good.keys, { pad: 'x'.repeat(8000) }] })
  t.equal(await status(h, tok), 401, 'oversized JWKS: 401')
  // The good key set would arrive after 10 s: a 401 means the 200 ms jwksTimeoutMs cut the fetch.
  srv.serve(good, 200, 10_000)
  t.equal(await status(h, tok), 401, 'slow JWKS: 401, bounded by jwksTimeoutMs')
  srv.serve(good)
  t.equal(await status(h, tok), 200, 'recovered without a restart')
  t.equal(h.hits(), 1)
})

t.test('a stale key set is refreshed in the background after jwksMaxAgeMs', async (t) => {
  const srv = await jwksServer(t, { keys: [jwk(rsaA.publicKey, { kid: 'k1' })] })
  const h = await build(t, { jwksUrl: srv.url, jwksMaxAgeMs: 60_000 })
  const travel = timeTravel(t)
  const tok = token(rsaA.privateKey, 'RS256', 'k1')
  t.equal(await status(h, tok), 200)
  srv.serve({ keys: [jwk(rsaB.publicKey, { kid: 'k2' })] })
  t.equal(await status(h, tok), 200, 'fresh set (and token cache): no refetch yet')
  t.equal(srv.fetches(), 1)
  travel(60_001)
  t.equal(await status(h, tok), 200, 'the request that finds the set stale is served from it (stale-while-revalidate)')
  await waitFor(() => srv.fetches() >= 2, { message: 'the background fetch' })
  t.equal(srv.fetches(), 2, 'one background fetch')
  const after = await waitFor(async () => { const s = await status(h, tok); return s === 401 ? s : undefined }, { intervalMs: 1, message: 'the refreshed key set in use' })
  t.equal(after, 401, 'once refreshed, the withdrawn key is refused')
  t.equal(await status(h, token(rsaB.privateKey, 'RS256', 'k2')), 200, 'and the new one accepted')
})
