import t, { type Test } from 'tap'
import diagnostics from 'node:diagnostics_channel'
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { gatewayErrorHandler, gatewayNotFoundHandler } from '../../src/errors.js'
import { loadConfig } from '../../src/config.js'
import { ipRateLimitPlugin, routeRateLimitPlugin, type IpRateLimitPluginOptions, type RateLimitRouteConfig, type RouteRateLimitPluginOptions } from '../../plugins/rate-limit/index.js'
import type { Consumer } from '../../lib/consumer.js'

const LIMITED_BODY = { statusCode: 429, code: 'GW_RATE_LIMITED', error: 'Too Many Requests', message: 'Rate limit exceeded' }

interface Harness {
  app: FastifyInstance
  hits: Record<string, number>
  authCalls: () => number
}

/**
 * A stand-in for the auth plugin: `x-test-consumer` names the consumer; `x-test-deny` is a bad
 * credential (401). It runs in onRequest like the real one.
 */
function fakeAuth (counter: { n: number }): FastifyPluginAsync {
  return fp(async function fakeAuthPlugin (fastify) {
    fastify.decorateRequest('consumer', null)
    fastify.addHook('onRequest', async function fakeAuthOnRequest (request, reply) {
      counter.n++
      if (request.routeOptions.config.auth === false) return
      if (request.headers['x-test-deny'] !== undefined) {
        reply.code(401)
        throw Object.assign(new Error('Unauthorized'), { statusCode: 401, code: 'GW_AUTH_UNAUTHORIZED' })
      }
      const id = request.headers['x-test-consumer']
      if (typeof id === 'string') request.consumer = { id, strategy: 'apiKey', scopes: [] } satisfies Consumer
    })
  }, { name: 'fake-auth' })
}

interface RouteSpec { url: string, method?: 'GET' | 'POST', rateLimit?: RateLimitRouteConfig, auth?: false }

async function build (t: Test, opts: {
  ip?: IpRateLimitPluginOptions | false
  route?: RouteRateLimitPluginOptions | false
  routes?: RouteSpec[]
  trustProxy?: string[]
} = {}): Promise<Harness> {
  const app = Fastify({ trustProxy: opts.trustProxy ?? false, exposeHeadRoutes: true })
  app.setErrorHandler(gatewayErrorHandler)
  app.setNotFoundHandler(gatewayNotFoundHandler)
  const counter = { n: 0 }
  if (opts.ip !== false) await app.register(ipRateLimitPlugin, opts.ip ?? { max: 3, timeWindow: '1 minute' })
  await app.register(fakeAuth(counter))
  if (opts.route !== false) await app.register(routeRateLimitPlugin, opts.route ?? {})
  const hits: Record<string, number> = {}
  for (const r of opts.routes ?? [{ url: '/api/users' }]) {
    hits[r.url] = 0
    const config: Record<string, unknown> = {}
    if (r.rateLimit !== undefined) config.rateLimit = r.rateLimit
    if (r.auth !== undefined) config.auth = r.auth
    app.route({
      method: r.method ?? 'GET',
      url: r.url,
      config,
      handler: async () => {
        hits[r.url]++
        return { ok: true }
      }
    })
  }
  t.teardown(() => app.close())
  await app.ready()
  return { app, hits, authCalls: () => counter.n }
}

function assertLimited (t: Test, res: { statusCode: number, headers: Record<string, unknown>, json: () => unknown }, limit: number): void {
  t.equal(res.statusCode, 429)
  t.strictSame(res.json(), LIMITED_BODY)
  t.equal(res.headers['ratelimit-limit'], String(limit))
  t.equal(res.headers['ratelimit-remaining'], '0')
  const retryAfter = Number(res.headers['retry-after'])
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After is a delay in seconds (${String(res.headers['retry-after'])})`)
  t.equal(res.headers['ratelimit-reset'], res.headers['retry-after'])
}

t.test('per-IP tier: the limit, then 429 with Retry-After, RateLimit headers and a generic body; handler not hit', async (t) => {
  const h = await build(t, { route: false })
  for (let i = 0; i < 3; i++) {
    const ok = await h.app.inject({ url: '/api/users', remoteAddress: '198.51.100.1' })
    t.equal(ok.statusCode, 200)
    t.equal(ok.headers['ratelimit-limit'], undefined, 'the IP tier adds no headers to admitted requests')
  }
  const res = await h.app.inject({ url: '/api/users', remoteAddress: '198.51.100.1' })
  assertLimited(t, res, 3)
  t.equal(h.hits['/api/users'], 3, 'the 4th request never reached the handler')
  const other = await h.app.inject({ url: '/api/users', remoteAddress: '198.51.100.2' })
  t.equal(other.statusCode, 200, 'another client has its own budget')
})

t.test('per-IP tier counts unrouted requests and spelling variants (404) against the client', async (t) => {
  const h = await build(t, { route: false })
  for (const url of ['/nope', '/API/users', '/api/users/']) {
    const res = await h.app.inject({ url, remoteAddress: '198.51.100.3' })
    t.equal(res.statusCode, 404, `${url} does not route`)
  }
  const res = await h.app.inject({ url: '/api/users', remoteAddress: '198.51.100.3' })
  assertLimited(t, res, 3)
  t.equal(h.hits['/api/users'], 0)
  const more = await h.app.inject({ url: '/still-nope', remoteAddress: '198.51.100.3' })
  t.equal(more.statusCode, 429, 'an exhausted client gets 429 even where nothing routes')
})

t.test('per-IP tier runs before authentication: bad credentials stop reaching auth', async (t) => {
  const h = await build(t, { route: false })
  for (let i = 0; i < 3; i++) {
    const res = await h.app.inject({ url: '/api/users', remoteAddress: '198.51.100.4', headers: { 'x-test-deny': '1' } })
    t.equal(res.statusCode, 401)
  }
  const before = h.authCalls()
  const res = await h.app.inject({ url: '/api/users', remoteAddress: '198.51.100.4', headers: { 'x-test-deny': '1' } })
  t.equal(res.statusCode, 429)
  t.equal(h.authCalls(), before, 'auth did not run for the throttled request')
  t.equal(h.hits['/api/users'], 0)
})

t.test('per-IP tier: IPv6 clients share a /64, IPv4-mapped addresses count as IPv4', async (t) => {
  const h = await build(t, { route: false, ip: { max: 2, timeWindow: 60_000 } })
  const send = async (remoteAddress: string): Promise<number> => (await h.app.inject({ url: '/api/users', remoteAddress })).statusCode
  t.equal(await send('2001:db8:1:2::1'), 200)
  t.equal(await send('2001:0DB8:0001:0002:ffff:ffff:ffff:ffff'), 200, 'same /64, other spelling')
  t.equal(await send('2001:db8:1:2:abcd::9'), 429, 'a third address of the same /64 is over the limit')
  t.equal(await send('2001:db8:1:3::1'), 200, 'the next /64 has its own budget')
  t.equal(await send('10.9.8.7'), 200)
  t.equal(await send('::ffff:10.9.8.7'), 200, 'mapped form of the same IPv4 client')
  t.equal(await send('10.9.8.7'), 429, 'both spellings drew from one budget')
  t.equal(await send('::ffff:10.9.8.6'), 200, 'a different IPv4 client')
})

t.test('TRUST_PROXY: x-forwarded-for counts only from a trusted peer', async (t) => {
  const h = await build(t, { route: false, ip: { max: 1, timeWindow: 60_000 }, trustProxy: ['127.0.0.1', '10.0.0.0/8'] })
  const viaProxy = async (xff: string): Promise<number> =>
    (await h.app.inject({ url: '/api/users', remoteAddress: '10.1.1.1', headers: { 'x-forwarded-for': xff } })).statusCode
  t.equal(await viaProxy('203.0.113.1'), 200)
  t.equal(await viaProxy('203.0.113.2'), 200, 'a different client behind the trusted proxy')
  t.equal(await viaProxy('203.0.113.1'), 429, 'the first client is limited by its forwarded address')
  const direct = async (xff: string): Promise<number> =>
    (await h.app.inject({ url: '/api/users', remoteAddress: '198.51.100.9', headers: { 'x-forwarded-for': xff } })).statusCode
  t.equal(await direct('203.0.113.50'), 200)
  t.equal(await direct('203.0.113.51'), 429, 'an untrusted peer cannot mint buckets with x-forwarded-for')
  t.equal(await direct('garbage'), 429)
})

t.test('a trusted proxy forwarding garbage: every malformed address shares one bucket', async (t) => {
  const h = await build(t, { route: false, ip: { max: 1, timeWindow: 60_000 }, trustProxy: ['10.0.0.0/8'] })
  const send = async (xff: string): Promise<number> =>
    (await h.app.inject({ url: '/api/users', remoteAddress: '10.1.1.1', headers: { 'x-forwarded-for': xff } })).statusCode
  t.equal(await send('not-an-ip'), 200)
  t.equal(await send('also-not-an-ip'), 429)
})

t.test('per-IP tier default: 1000 per minute', async (t) => {
  const h = await build(t, { route: false, ip: {} })
  let ok = 0
  for (let i = 0; i < 1000; i++) {
    if ((await h.app.inject({ url: '/nope', remoteAddress: '198.51.100.10' })).statusCode === 404) ok++
  }
  t.equal(ok, 1000)
  const res = await h.app.inject({ url: '/nope', remoteAddress: '198.51.100.10' })
  assertLimited(t, res, 1000)
})

t.test('per-route tier: keyed by consumer after auth, by IP on public routes and with keyBy ip', async (t) => {
  const h = await build(t, {
    ip: false,
    routes: [
      { url: '/c', rateLimit: { max: 2, timeWindow: '1 minute' } },
      { url: '/ip', rateLimit: { max: 2, timeWindow: '1 minute', keyBy: 'ip' } },
      { url: '/public', auth: false, rateLimit: { max: 2, timeWindow: 60_000 } }
    ]
  })
  const send = async (url: string, consumer: string | undefined, remoteAddress: string): Promise<number> =>
    (await h.app.inject({ url, remoteAddress, headers: consumer === undefined ? {} : { 'x-test-consumer': consumer } })).statusCode
  t.equal(await send('/c', 'alice', '192.0.2.1'), 200)
  t.equal(await send('/c', 'alice', '192.0.2.2'), 200, 'same consumer, other IP')
  t.equal(await send('/c', 'alice', '192.0.2.3'), 429, 'the consumer budget follows the consumer across IPs')
  t.equal(await send('/c', 'bob', '192.0.2.1'), 200, 'another consumer from the same IP has its own budget')
  t.equal(h.hits['/c'], 3)

  t.equal(await send('/ip', 'alice', '192.0.2.9'), 200)
  t.equal(await send('/ip', 'bob', '192.0.2.9'), 200)
  t.equal(await send('/ip', 'carol', '192.0.2.9'), 429, 'keyBy ip: consumers behind one IP share it')
  t.equal(await send('/ip', 'carol', '192.0.2.10'), 200)

  t.equal(await send('/public', undefined, '192.0.2.20'), 200)
  t.equal(await send('/public', undefined, '192.0.2.20'), 200)
  t.equal(await send('/public', undefined, '192.0.2.20'), 429, 'anonymous callers are keyed by IP')
  t.equal(await send('/public', undefined, '192.0.2.21'), 200)
  t.equal(h.hits['/public'], 3)
})

t.test('per-route tier: 429 shape, headers on admitted requests, routes have separate budgets, HEAD shares GET', async (t) => {
  const h = await build(t, {
    ip: false,
    routes: [
      { url: '/a', rateLimit: { max: 3, timeWindow: '30 s' } },
      { url: '/b', rateLimit: { max: 3, timeWindow: '30 s' } }
    ]
  })
  const headers = { 'x-test-consumer': 'alice' }
  const first = await h.app.inject({ url: '/a', headers })
  t.equal(first.statusCode, 200)
  t.equal(first.headers['ratelimit-limit'], '3')
  t.equal(first.headers['ratelimit-remaining'], '2')
  t.equal(first.headers['ratelimit-reset'], '30')
  const head = await h.app.inject({ method: 'HEAD', url: '/a', headers })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['ratelimit-remaining'], '1', 'HEAD draws from the GET route budget')
  t.equal((await h.app.inject({ url: '/a', headers })).headers['ratelimit-remaining'], '0')
  const res = await h.app.inject({ url: '/a', headers })
  assertLimited(t, res, 3)
  t.ok(Number(res.headers['retry-after']) <= 30)
  t.equal(h.hits['/a'], 3)
  t.equal((await h.app.inject({ url: '/b', headers })).statusCode, 200, 'another route has its own budget')
})

t.test('per-route tier: false disables; a route without the key behaves as if the plugin were absent', async (t) => {
  const h = await build(t, {
    ip: false,
    routes: [
      { url: '/off', rateLimit: false },
      { url: '/bare' }
    ]
  })
  for (let i = 0; i < 20; i++) {
    const off = await h.app.inject({ url: '/off', headers: { 'x-test-consumer': 'a' } })
    const bare = await h.app.inject({ url: '/bare', headers: { 'x-test-consumer': 'a' } })
    t.equal(off.statusCode, 200)
    t.equal(bare.statusCode, 200)
    t.equal(off.headers['ratelimit-limit'], undefined)
    t.equal(bare.headers['ratelimit-limit'], undefined)
  }
  t.equal(h.hits['/off'], 20)
  t.equal(h.hits['/bare'], 20)
  t.equal(h.app.printRoutes({ includeHooks: true }).includes('rateLimitRouteOnRequest'), false, 'no route carries the hook')
})

t.test('per-route tier: the gateway default from the environment (RATE_LIMIT_MAX / RATE_LIMIT_WINDOW)', async (t) => {
  const config = loadConfig({})
  const policy: RateLimitRouteConfig = { max: config.rateLimit.max, timeWindow: config.rateLimit.timeWindow }
  const h = await build(t, { ip: false, routes: [{ url: '/d', rateLimit: policy }] })
  const headers = { 'x-test-consumer': 'alice' }
  for (let i = 0; i < 100; i++) await h.app.inject({ url: '/d', headers })
  t.equal(h.hits['/d'], 100)
  const res = await h.app.inject({ url: '/d', headers })
  assertLimited(t, res, 100)
  t.equal(h.hits['/d'], 100)
})

t.test('per-route tier: the window resets', async (t) => {
  const realNow = Date.now
  let offsetMs = 0
  Date.now = () => realNow() + offsetMs
  t.teardown(() => { Date.now = realNow })
  const h = await build(t, { ip: false, routes: [{ url: '/w', rateLimit: { max: 1, timeWindow: '10s' } }] })
  const headers = { 'x-test-consumer': 'alice' }
  t.equal((await h.app.inject({ url: '/w', headers })).statusCode, 200)
  t.equal((await h.app.inject({ url: '/w', headers })).statusCode, 429)
  offsetMs = 9_000
  t.equal((await h.app.inject({ url: '/w', headers })).statusCode, 429, 'still inside the window')
  offsetMs = 10_001
  t.equal((await h.app.inject({ url: '/w', headers })).statusCode, 200, 'a new window')
})

t.test('both tiers together: the route headers win on admitted requests; the IP tier still protects', async (t) => {
  const h = await build(t, { ip: { max: 5, timeWindow: 60_000 }, routes: [{ url: '/r', rateLimit: { max: 2, timeWindow: 60_000 } }] })
  const headers = { 'x-test-consumer': 'alice' }
  const res = await h.app.inject({ url: '/r', headers, remoteAddress: '192.0.2.50' })
  t.equal(res.headers['ratelimit-limit'], '2')
  await h.app.inject({ url: '/r', headers, remoteAddress: '192.0.2.50' })
  assertLimited(t, await h.app.inject({ url: '/r', headers, remoteAddress: '192.0.2.50' }), 2)
  t.equal((await h.app.inject({ url: '/r', headers: { 'x-test-consumer': 'bob' }, remoteAddress: '192.0.2.50' })).statusCode, 200)
  t.equal((await h.app.inject({ url: '/r', headers: { 'x-test-consumer': 'carol' }, remoteAddress: '192.0.2.50' })).statusCode, 200)
  assertLimited(t, await h.app.inject({ url: '/r', headers: { 'x-test-consumer': 'dave' }, remoteAddress: '192.0.2.50' }), 5)
  t.equal(h.hits['/r'], 4)
})

t.test('rateLimited signal: tier and route template (never a raw path)', async (t) => {
  const seen: unknown[] = []
  const onMessage = (m: unknown): void => { seen.push(m) }
  diagnostics.subscribe('portcullis:rate-limit.limited', onMessage)
  t.teardown(() => diagnostics.unsubscribe('portcullis:rate-limit.limited', onMessage))
  const h = await build(t, { ip: { max: 3, timeWindow: 60_000 }, routes: [{ url: '/users/:id', rateLimit: { max: 1, timeWindow: 60_000 } }] })
  const headers = { 'x-test-consumer': 'alice' }
  await h.app.inject({ url: '/users/1?x=secret', headers, remoteAddress: '192.0.2.60' })
  await h.app.inject({ url: '/users/2?x=secret', headers, remoteAddress: '192.0.2.60' })
  await h.app.inject({ url: '/nope', remoteAddress: '192.0.2.60' })
  await h.app.inject({ url: '/nope', remoteAddress: '192.0.2.60' })
  t.strictSame(seen, [{ route: '/users/:id', tier: 'route' }, { route: '<unrouted>', tier: 'ip' }])
})

t.test('memory mode is bounded: the LRU keeps at most cacheSize clients', async (t) => {
  const h = await build(t, { route: false, ip: { max: 1, timeWindow: 60_000, cacheSize: 100 } })
  t.equal((await h.app.inject({ url: '/nope', remoteAddress: '198.18.0.0' })).statusCode, 404)
  t.equal((await h.app.inject({ url: '/nope', remoteAddress: '198.18.0.0' })).statusCode, 429)
  for (let i = 1; i <= 100; i++) await h.app.inject({ url: '/nope', remoteAddress: `198.18.1.${i}` })
  t.equal((await h.app.inject({ url: '/nope', remoteAddress: '198.18.0.0' })).statusCode, 404, 'the oldest entry was evicted: the store holds 100 entries')
})

t.test('invalid options and route config: ready() rejects with GW_RATE_LIMIT_CONFIG_INVALID', async (t) => {
  const bad: Array<[string, () => Promise<unknown>]> = [
    ['ip max 0', async () => await Fastify().register(ipRateLimitPlugin, { max: 0 }).ready()],
    ['ip window text', async () => await Fastify().register(ipRateLimitPlugin, { timeWindow: 'soon' }).ready()],
    ['ip window 0', async () => await Fastify().register(ipRateLimitPlugin, { timeWindow: 0 }).ready()],
    ['ip window too long', async () => await Fastify().register(ipRateLimitPlugin, { timeWindow: '2 days' }).ready()],
    ['ip unknown option', async () => await Fastify().register(ipRateLimitPlugin, { max: 1, burst: 2 } as IpRateLimitPluginOptions).ready()],
    ['route failure mode', async () => await Fastify().register(routeRateLimitPlugin, { failureMode: 'maybe' as 'open' }).ready()],
    ['route redis url', async () => await Fastify().register(routeRateLimitPlugin, { redisUrl: 'http://127.0.0.1:6379' }).ready()],
    ['route timeout', async () => await Fastify().register(routeRateLimitPlugin, { redisTimeoutMs: 0 }).ready()]
  ]
  for (const [name, run] of bad) await t.rejects(run(), { code: 'GW_RATE_LIMIT_CONFIG_INVALID' }, name)

  const routeConfigs: unknown[] = [
    { max: 0, timeWindow: 1000 },
    { max: 1, timeWindow: '1 fortnight' },
    { max: 1, timeWindow: 1000, keyBy: 'user' },
    { max: 1, timeWindow: 1000, burst: 3 },
    { timeWindow: 1000 },
    true,
    null
  ]
  for (const rateLimit of routeConfigs) {
    const app = Fastify()
    await app.register(routeRateLimitPlugin, {})
    let hit = 0
    await t.rejects(async () => {
      app.get('/x', { config: { rateLimit: rateLimit as false } }, async () => { hit++; return 'x' })
      await app.ready()
    }, { code: 'GW_RATE_LIMIT_CONFIG_INVALID' }, JSON.stringify(rateLimit))
    t.equal(hit, 0)
    await app.close()
  }

  const err = await Fastify().register(ipRateLimitPlugin, { max: 0, timeWindow: 'soon' }).ready().then(() => undefined, (e: Error) => e)
  t.match(err?.message, /max/)
  t.match(err?.message, /timeWindow/, 'every problem is listed')
})
