/**
 * Redis outages measured from outside, with a redis-server of the test's own (hung with SIGSTOP,
 * killed with SIGKILL), under bursts of concurrent requests over real TCP:
 * - every answer is 503 GW_RATE_LIMIT_STORE_UNAVAILABLE with Retry-After (closed) or 200 (open),
 *   never a 500, and nothing reaches the handler while closed;
 * - each request's time in the gateway stays within about one REDIS_TIMEOUT_MS, also for
 *   requests that arrive while an earlier auto-pipelined batch is still timing out;
 * - the outage is logged in O(1) lines carrying the failure count, and no per-request warn line.
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Agent, request } from 'undici'
import { gatewayErrorHandler } from '../../src/errors.js'
import { routeRateLimitPlugin, type RouteRateLimitPluginOptions } from '../../plugins/rate-limit/index.js'
import { startOwnRedis } from '../helpers/redis.js'

const TIMEOUT_MS = 1000
/** Scheduling slack on a busy machine: well under the extra REDIS_TIMEOUT_MS of a queued wait. */
const SLACK_MS = TIMEOUT_MS / 2
const BURST = 40

interface Instance {
  app: FastifyInstance
  url: string
  hits: () => number
  /** Requests that reached the rate-limit hook so far. */
  arrived: () => number
  /** Server-side time of each answered request (onRequest to onResponse), ms. */
  elapsed: number[]
  logs: Array<Record<string, unknown>>
}

const fakeAuth = fp(async function fakeAuthPlugin (fastify) {
  fastify.decorateRequest('consumer', null)
  fastify.addHook('onRequest', async function fakeAuthOnRequest (request) {
    const id = request.headers['x-test-consumer']
    if (typeof id === 'string') request.consumer = { id, strategy: 'apiKey', scopes: [] }
  })
}, { name: 'fake-auth' })

async function startInstance (t: Test, options: RouteRateLimitPluginOptions, max = 1000): Promise<Instance> {
  const logs: Array<Record<string, unknown>> = []
  const elapsed: number[] = []
  let arrived = 0
  const app = Fastify({
    logger: { level: 'info', stream: { write: (line: string) => { logs.push(JSON.parse(line) as Record<string, unknown>) } } }
  })
  app.setErrorHandler(gatewayErrorHandler)
  app.addHook('onRequest', async function countArrival () { arrived++ })
  app.addHook('onResponse', async function recordElapsed (_request, reply) { elapsed.push(reply.elapsedTime) })
  await app.register(fakeAuth)
  await app.register(routeRateLimitPlugin, { redisTimeoutMs: TIMEOUT_MS, ...options })
  let hits = 0
  app.get('/api/items', { config: { rateLimit: { max, timeWindow: '1 minute' } } }, async () => {
    hits++
    return { ok: true }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const addr = app.server.address()
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0
  return { app, url: `http://127.0.0.1:${port}`, hits: () => hits, arrived: () => arrived, elapsed, logs }
}

const agent = new Agent({ connections: BURST * 2, pipelining: 1 })
t.teardown(() => agent.close())

interface Answer { status: number, code: string | undefined, retryAfter: string | undefined }

async function call (base: string, consumer = 'alice'): Promise<Answer> {
  const res = await request(`${base}/api/items`, { dispatcher: agent, headers: { 'x-test-consumer': consumer } })
  const body = await res.body.json() as Record<string, unknown>
  return { status: res.statusCode, code: body.code as string | undefined, retryAfter: res.headers['retry-after'] as string | undefined }
}

async function until (what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => { setTimeout(resolve, 10) })
  }
}

/**
 * Two waves of BURST concurrent requests: the second is sent once the first has reached the
 * gateway, so it arrives while the first wave's pipeline is still waiting on the hung Redis.
 */
async function twoWaves (gw: Instance): Promise<Answer[]> {
  const before = gw.arrived()
  const first = Array.from({ length: BURST }, async () => await call(gw.url))
  await until('the first wave to arrive', () => gw.arrived() >= before + BURST)
  const second = Array.from({ length: BURST }, async () => await call(gw.url))
  return await Promise.all([...first, ...second])
}

const FAILED = 'rate-limit store (redis) failed; failure mode applied'
const STILL = 'rate-limit store (redis) still failing; failure mode applied'

function warnLines (gw: Instance): Array<Record<string, unknown>> {
  return gw.logs.filter((l) => typeof l.level === 'number' && l.level >= 40)
}

t.test('closed, Redis hung: every request 503 with Retry-After within about REDIS_TIMEOUT_MS; O(1) log lines with the count', async (t) => {
  const redis = await startOwnRedis(t)
  const gw = await startInstance(t, { redisUrl: redis.url, failureLogIntervalMs: 300 })
  t.equal((await call(gw.url)).status, 200, 'Redis up: admitted')
  const served = gw.elapsed.length

  redis.hang()
  t.teardown(() => redis.wake())
  const answers = await twoWaves(gw)
  t.equal(answers.length, BURST * 2)
  t.strictSame([...new Set(answers.map((a) => `${a.status} ${a.code ?? ''} ${a.retryAfter ?? ''}`))], ['503 GW_RATE_LIMIT_STORE_UNAVAILABLE 5'], 'every answer is the fail-closed 503 with Retry-After')
  t.equal(gw.hits(), 1, 'nothing reached the handler while Redis hung')
  const waits = gw.elapsed.slice(served)
  const slowest = Math.max(...waits)
  t.ok(slowest <= TIMEOUT_MS + SLACK_MS, `slowest request ${Math.round(slowest)} ms <= REDIS_TIMEOUT_MS ${TIMEOUT_MS} + ${SLACK_MS} (queued behind the first pipeline it would be ~${TIMEOUT_MS * 2})`)
  t.ok(Math.min(...waits) >= TIMEOUT_MS - 5, 'and each one waited for the store up to its deadline (Redis really hung)')

  // The failures of the burst fall into one or two intervals: wait until the lines count them all.
  const counted = (): number => warnLines(gw).filter((l) => l.msg === STILL).reduce((n, l) => n + (l.failures as number), 0)
  await until('the interval lines with the count', () => counted() >= BURST * 2 - 1)
  const warns = warnLines(gw)
  t.equal(warns.filter((l) => l.msg === 'request failed').length, 0, 'no per-request warn line')
  t.ok(warns.length <= 4, `${warns.length} warn lines for ${BURST * 2} failed requests`)
  const first = warns.filter((l) => l.msg === FAILED)
  t.equal(first.length, 1, 'the outage starts with one line')
  // The gateway's deadline or ioredis's own command timeout, whichever fired first.
  t.match(first[0].error, { message: /did not answer within|timed out/ }, 'the error message')
  t.strictSame(Object.keys(first[0].error as object).filter((k) => k !== 'code'), ['message'], 'code and message only, no stack')
  t.notOk('err' in first[0] || 'stack' in first[0])
  t.equal(counted(), BURST * 2 - 1, 'the interval lines count every other failure, each once')

  redis.wake()
  await until('limits back', async () => (await call(gw.url)).status === 200)
})

t.test('open, Redis hung: every request 200 within about REDIS_TIMEOUT_MS', async (t) => {
  const redis = await startOwnRedis(t)
  const gw = await startInstance(t, { redisUrl: redis.url, failureMode: 'open' })
  t.equal((await call(gw.url)).status, 200)
  const served = gw.elapsed.length
  redis.hang()
  t.teardown(() => redis.wake())
  const answers = await twoWaves(gw)
  t.ok(answers.every((a) => a.status === 200), 'every request admitted')
  t.equal(gw.hits(), BURST * 2 + 1)
  const slowest = Math.max(...gw.elapsed.slice(served))
  t.ok(slowest <= TIMEOUT_MS + SLACK_MS, `slowest request ${Math.round(slowest)} ms <= ${TIMEOUT_MS} + ${SLACK_MS}`)
  t.equal(warnLines(gw).filter((l) => l.msg === FAILED).length, 1, 'one failure line')
  redis.wake()
})

t.test('closed, Redis killed: fast 503s with Retry-After, never 500; limits back soon after a restart', async (t) => {
  const redis = await startOwnRedis(t)
  const gw = await startInstance(t, { redisUrl: redis.url }, 3)
  t.equal((await call(gw.url)).status, 200)
  const served = gw.elapsed.length
  await redis.kill()
  const answers = await Promise.all(Array.from({ length: BURST * 2 }, async () => await call(gw.url)))
  t.strictSame([...new Set(answers.map((a) => `${a.status} ${a.code ?? ''} ${a.retryAfter ?? ''}`))], ['503 GW_RATE_LIMIT_STORE_UNAVAILABLE 5'])
  t.equal(gw.hits(), 1, 'nothing reached the handler')
  const slowest = Math.max(...gw.elapsed.slice(served))
  t.ok(slowest <= TIMEOUT_MS + SLACK_MS, `slowest request ${Math.round(slowest)} ms`)
  t.equal(warnLines(gw).filter((l) => l.msg === 'request failed').length, 0, 'no per-request warn line')
  t.ok(warnLines(gw).length <= 4, `${warnLines(gw).length} warn lines`)

  await redis.restart()
  const restarted = Date.now()
  // A fresh Redis has no counters: the limit of 3 applies from zero.
  await until('limits back', async () => (await call(gw.url)).status === 200)
  const back = Date.now() - restarted
  t.comment(`limits back ${back} ms after redis-server restarted`)
  await until('the limit applies', async () => (await call(gw.url)).status === 429)
  t.equal(gw.hits(), 4, 'exactly max admitted after the restart')
})
