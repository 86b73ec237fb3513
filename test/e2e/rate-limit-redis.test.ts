/**
 * The per-route limit shared through one real Redis (127.0.0.1:6379) by two gateway instances
 * over real TCP, and the failure policy with the Redis connection really paused, delayed and
 * dropped through a TCP proxy (test/helpers/tcp-proxy.ts). Fails, never skips, without Redis.
 */
import t, { type Test } from 'tap'
import diagnostics from 'node:diagnostics_channel'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Agent, request } from 'undici'
import { gatewayErrorHandler } from '../../src/errors.js'
import { ipRateLimitPlugin, routeRateLimitPlugin, type RouteRateLimitPluginOptions } from '../../plugins/rate-limit/index.js'
import { requireRedis, REDIS_PORT, REDIS_URL } from '../helpers/redis.js'
import { startTcpProxy } from '../helpers/tcp-proxy.js'

interface Instance {
  app: FastifyInstance
  url: string
  hits: () => number
  logs: Array<Record<string, unknown>>
}

/** Stand-in for the auth plugin: `x-test-consumer` names the consumer (onRequest). */
const fakeAuth = fp(async function fakeAuthPlugin (fastify) {
  fastify.decorateRequest('consumer', null)
  fastify.addHook('onRequest', async function fakeAuthOnRequest (request) {
    const id = request.headers['x-test-consumer']
    if (typeof id === 'string') request.consumer = { id, strategy: 'apiKey', scopes: [] }
  })
}, { name: 'fake-auth' })

async function startInstance (t: Test, options: RouteRateLimitPluginOptions, max: number): Promise<Instance> {
  const logs: Array<Record<string, unknown>> = []
  const app = Fastify({
    logger: { level: 'info', stream: { write: (line: string) => { logs.push(JSON.parse(line) as Record<string, unknown>) } } }
  })
  app.setErrorHandler(gatewayErrorHandler)
  await app.register(ipRateLimitPlugin, { max: 1_000_000 })
  await app.register(fakeAuth)
  await app.register(routeRateLimitPlugin, options)
  let hits = 0
  app.get('/api/items', { config: { rateLimit: { max, timeWindow: '1 minute' } } }, async () => {
    hits++
    return { ok: true }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const addr = app.server.address()
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0
  return { app, url: `http://127.0.0.1:${port}`, hits: () => hits, logs }
}

const agent = new Agent({ connections: 64, pipelining: 1 })
t.teardown(() => agent.close())

interface Answer { status: number, body: Record<string, unknown>, code: string | undefined, retryAfter: string | undefined, limit: string | undefined, ms: number }

async function call (base: string, consumer = 'alice'): Promise<Answer> {
  const started = performance.now()
  const res = await request(`${base}/api/items`, { dispatcher: agent, headers: { 'x-test-consumer': consumer } })
  const body = await res.body.json() as Record<string, unknown>
  const h = res.headers
  return {
    status: res.statusCode,
    body,
    code: body.code as string | undefined,
    retryAfter: h['retry-after'] as string | undefined,
    limit: h['ratelimit-limit'] as string | undefined,
    ms: performance.now() - started
  }
}

/** Calls until `done(answer)` or `ms` elapse; returns the time it took or -1. */
async function within (ms: number, base: string, done: (a: Answer) => boolean, consumer?: string): Promise<number> {
  const started = Date.now()
  while (Date.now() - started < ms) {
    if (done(await call(base, consumer))) return Date.now() - started
    await sleep(50)
  }
  return -1
}

function storeStates (t: Test): string[] {
  const seen: string[] = []
  const onMessage = (m: unknown): void => { seen.push((m as { state: string }).state) }
  diagnostics.subscribe('portcullis:store.state', onMessage)
  t.teardown(() => diagnostics.unsubscribe('portcullis:store.state', onMessage))
  return seen
}

const FAILED_LOG = 'rate-limit store (redis) failed; failure mode applied'

t.test('two instances, one Redis: concurrent load on both admits the limit in total (overshoot <= 2)', async (t) => {
  const redis = await requireRedis(t, 'shared')
  const max = 25
  const a = await startInstance(t, { redisUrl: REDIS_URL, keyPrefix: redis.prefix, redisTimeoutMs: 5000 }, max)
  const b = await startInstance(t, { redisUrl: REDIS_URL, keyPrefix: redis.prefix, redisTimeoutMs: 5000 }, max)
  const calls: Array<Promise<Answer>> = []
  for (let i = 0; i < 80; i++) calls.push(call(a.url), call(b.url))
  const answers = await Promise.all(calls)
  const admitted = answers.filter((x) => x.status === 200).length
  const limited = answers.filter((x) => x.status === 429)
  t.ok(admitted >= max && admitted <= max + 2, `admitted ${admitted} of 160 with a limit of ${max}`)
  t.equal(admitted + limited.length, 160, 'every other request was rate limited')
  t.ok(limited.every((x) => x.code === 'GW_RATE_LIMITED' && x.retryAfter !== undefined), '429s carry the code and Retry-After')
  t.strictSame(limited[0].body, { statusCode: 429, code: 'GW_RATE_LIMITED', error: 'Too Many Requests', message: 'Rate limit exceeded' })
  t.equal(a.hits() + b.hits(), admitted, 'the handlers saw exactly the admitted requests')
  t.ok(a.hits() > 0 && b.hits() > 0, `both instances admitted some (${a.hits()} + ${b.hits()})`)
  const keys = await redis.keys()
  t.strictSame(keys, [`${redis.prefix}{/api/items|c:alice}`], 'one shared counter per route and consumer, under the test prefix, hash-tagged')
  t.equal(await redis.client.get(keys[0]), '160')
  t.equal((await call(a.url, 'bob')).status, 200, 'another consumer has its own budget')
})

t.test('fail-closed (default): Redis paused, slow or down gives a fast 503; limits apply again soon after it is back', async (t) => {
  const redis = await requireRedis(t, 'closed')
  const proxy = await startTcpProxy(t, REDIS_PORT)
  const states = storeStates(t)
  const gw = await startInstance(t, { redisUrl: `redis://127.0.0.1:${proxy.port}`, keyPrefix: redis.prefix, redisTimeoutMs: 200 }, 5)
  t.equal((await call(gw.url)).status, 200, 'Redis up: admitted')

  proxy.pause()
  const paused: Answer[] = []
  for (let i = 0; i < 8; i++) paused.push(await call(gw.url))
  for (const a of paused) {
    t.equal(a.status, 503)
    t.equal(a.code, 'GW_RATE_LIMIT_STORE_UNAVAILABLE')
    t.equal(a.retryAfter, '5')
    t.ok(a.ms < 1000, `answered in ${Math.round(a.ms)} ms (< 1 s)`)
  }
  t.strictSame(paused[0].body, { statusCode: 503, code: 'GW_RATE_LIMIT_STORE_UNAVAILABLE', error: 'Service Unavailable', message: 'Service unavailable' }, 'generic body: no Redis detail')
  t.equal(gw.hits(), 1, 'nothing reached the handler while Redis was paused')
  t.equal(gw.logs.filter((l) => l.msg === FAILED_LOG).length, 1, 'the failure is logged once per interval, not per request')
  t.ok(states.filter((s) => s === 'error').length >= 8, 'every failure is published for metrics')

  proxy.resume()
  const back = await within(5000, gw.url, (a) => a.status === 200)
  t.ok(back >= 0, `admitted again ${back} ms after Redis resumed`)

  proxy.delay(600)
  const slow = await call(gw.url)
  t.equal(slow.status, 503, 'Redis slower than REDIS_TIMEOUT_MS is a failure')
  t.ok(slow.ms < 1000, `slow Redis answered in ${Math.round(slow.ms)} ms`)

  proxy.resume()
  t.ok(await within(5000, gw.url, (a) => a.status === 200) >= 0, 'admitted again after the delay ends')

  proxy.refuse(true)
  proxy.drop()
  const down = await call(gw.url)
  t.equal(down.status, 503, 'Redis down: 503')
  t.ok(down.ms < 1000, `Redis down answered in ${Math.round(down.ms)} ms`)
  t.ok(states.includes('down'), 'the disconnect is published')

  proxy.resume()
  const recovered = await within(5000, gw.url, (a) => a.status === 429, 'alice')
  t.ok(recovered >= 0, `the shared limit applies again ${recovered} ms after Redis is back`)
  t.equal(states.at(-1), 'up', 'the reconnect is published')
  const hitsBefore = gw.hits()
  const after = await call(gw.url)
  t.equal(after.status, 429)
  t.equal(after.limit, '5')
  t.equal(gw.hits(), hitsBefore)
})

t.test('fail-open: Redis paused admits quickly; the limit applies again after resume', async (t) => {
  const redis = await requireRedis(t, 'open')
  const proxy = await startTcpProxy(t, REDIS_PORT)
  const gw = await startInstance(t, { redisUrl: `redis://127.0.0.1:${proxy.port}`, keyPrefix: redis.prefix, failureMode: 'open' }, 3)
  t.equal((await call(gw.url)).status, 200)
  proxy.pause()
  for (let i = 0; i < 6; i++) {
    const a = await call(gw.url)
    t.equal(a.status, 200, 'admitted while the store fails')
    t.ok(a.ms < 1000, `in ${Math.round(a.ms)} ms`)
  }
  t.equal(gw.hits(), 7)
  t.equal(gw.logs.filter((l) => l.msg === FAILED_LOG).length, 1, 'logged once')
  proxy.resume()
  const limited = await within(5000, gw.url, (a) => a.status === 429)
  t.ok(limited >= 0, `limited again ${limited} ms after Redis resumed`)
})

t.test('Redis unreachable at startup: the gateway starts and applies the failure mode', async (t) => {
  const redis = await requireRedis(t, 'boot')
  const proxy = await startTcpProxy(t, REDIS_PORT)
  proxy.refuse(true)
  const started = Date.now()
  const gw = await startInstance(t, { redisUrl: `redis://127.0.0.1:${proxy.port}`, keyPrefix: redis.prefix }, 2)
  t.ok(Date.now() - started < 3000, 'startup is not held up for long')
  const a = await call(gw.url)
  t.equal(a.status, 503)
  t.equal(gw.hits(), 0)
  t.ok(gw.logs.some((l) => l.msg === 'rate-limit store (redis) not reachable at startup'))
  proxy.resume()
  t.ok(await within(5000, gw.url, (x) => x.status === 200) >= 0, 'serves once Redis is reachable')
})

t.test('the database a REDIS_URL names: counted there; one the server refuses stops startup', async (t) => {
  const redis = await requireRedis(t, 'database')
  const gw = await startInstance(t, { redisUrl: `${REDIS_URL}/3`, keyPrefix: redis.prefix }, 5)
  t.equal((await call(gw.url)).status, 200)
  const db3 = redis.client.duplicate({ db: 3 })
  t.teardown(() => { db3.disconnect() })
  await db3.connect()
  const key = `${redis.prefix}{/api/items|c:alice}`
  t.equal(await db3.get(key), '1', 'the counter is in database 3')
  await db3.del(key)
  t.equal(await redis.client.get(key), null, 'and not in database 0')

  // Redis has 16 databases unless configured otherwise: 99999 is refused. ioredis would report
  // the failed SELECT and then serve from database 0.
  await t.rejects(async () => { await Fastify({ logger: false }).register(routeRateLimitPlugin, { redisUrl: `${REDIS_URL}/99999`, keyPrefix: redis.prefix }).ready() }, { code: 'GW_RATE_LIMIT_CONFIG_INVALID', message: /redisUrl: the server refused the database it names \(ERR DB index is out of range\)/ })
})
