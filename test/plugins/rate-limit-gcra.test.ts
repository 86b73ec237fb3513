/**
 * `rateLimit.algorithm: 'gcra'`: no span of one window admits more than max + burst, in memory
 * and in the real Redis (127.0.0.1:6379, unique key prefix; two clients taking turns), driven by
 * the store's injectable clock across many window boundaries, with the bound reached exactly (not
 * stricter than promised). Through a gateway route built with defineRoute: burst + 1 at once, then
 * 429 with Retry-After, the upstream seeing only the admitted requests.
 */
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { request } from 'undici'
import { defineRoute } from 'portcullis'
import { routeRateLimitPlugin } from '../../plugins/rate-limit/index.js'
import { memoryGcraStore, redisGcraStore } from '../../plugins/rate-limit/gcra.js'
import { DeadlineQueue, type RateLimitStore, type StoreAnswer } from '../../plugins/rate-limit/redis-store.js'
import { startGateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'
import { REDIS_URL, requireRedis } from '../helpers/redis.js'

async function incr (store: RateLimitStore, key: string, windowMs: number, max: number): Promise<StoreAnswer> {
  return await new Promise((resolve, reject) => {
    store.incr(key, (err, answer) => { if (err !== null || answer === undefined) reject(err ?? new Error('no answer')); else resolve(answer) }, windowMs, max)
  })
}

/** Most admissions in any half-open span [a, a + windowMs) starting at an admission. */
function busiestSpan (admitted: number[], windowMs: number): number {
  let best = 0
  let j = 0
  for (let i = 0; i < admitted.length; i++) {
    while (j < admitted.length && admitted[j] < admitted[i] + windowMs) j++
    best = Math.max(best, j - i)
  }
  return best
}

interface Case { max: number, windowMs: number, burst: number }
const CASES: Case[] = [
  { max: 10, windowMs: 1000, burst: 0 },
  { max: 10, windowMs: 1000, burst: 4 },
  { max: 3, windowMs: 60_000, burst: 7 },
  { max: 7, windowMs: 1000, burst: 1 }
]

/**
 * Three requests every tick (a quarter of the emission interval, or less) for five windows, from
 * a start in the middle of a window: returns the fake times of the admitted ones.
 */
async function drive (store: RateLimitStore, clock: { now: number }, key: string, c: Case): Promise<number[]> {
  const tick = Math.max(1, Math.floor(c.windowMs / c.max / 4))
  const start = clock.now
  const admitted: number[] = []
  for (let at = 0; at < c.windowMs * 5; at += tick) {
    clock.now = start + at
    for (let k = 0; k < 3; k++) {
      const a = await incr(store, `${c.burst};${key}`, c.windowMs, c.max)
      if (a.current <= c.max) admitted.push(at)
      else if (!(a.ttl >= 1)) throw new Error(`a refusal without a wait at ${at} ms`)
    }
  }
  return admitted
}

function checkSpans (t: Test, admitted: number[], c: Case, where: string): void {
  const busiest = busiestSpan(admitted, c.windowMs)
  t.equal(busiest, c.max + c.burst, `${where} max ${c.max}/${c.windowMs} ms burst ${c.burst}: busiest window-length span admits ${busiest} = max + burst, never more`)
  // Over five windows the pace is max per window, plus the burst once.
  t.ok(admitted.length >= 5 * c.max && admitted.length <= 5 * c.max + c.burst + 1, `${admitted.length} admitted over 5 windows`)
}

t.test('memory: no window-length span admits more than max + burst', async (t) => {
  for (const c of CASES) {
    const clock = { now: 1_700_000_000_500 }
    const Store = memoryGcraStore(1000, () => clock.now)
    checkSpans(t, await drive(new Store(), clock, 'k', c), c, 'memory')
  }
})

t.test('Redis: no window-length span admits more than max + burst, one script for every instance', async (t) => {
  const redis = await requireRedis(t, 'gcra')
  const deadlines = new DeadlineQueue(5000)
  t.teardown(() => { deadlines.close() })
  const other = redis.client.duplicate()
  t.teardown(() => { other.disconnect() })
  await other.connect()
  for (const [i, c] of CASES.entries()) {
    const clock = { now: Date.now() }
    // Two stores on two connections (two instances) taking turns: they share the state.
    const A = redisGcraStore(redis.client, redis.prefix, deadlines, () => clock.now)
    const B = redisGcraStore(other, redis.prefix, deadlines, () => clock.now)
    const a = new A()
    const b = new B()
    let turn = 0
    const alternating: RateLimitStore = { incr: (key, cb, w, m) => { (turn++ % 2 === 0 ? a : b).incr(key, cb, w, m) }, child: () => alternating }
    checkSpans(t, await drive(alternating, clock, `case${i}`, c), c, 'redis')
  }
  t.ok((await redis.keys()).length > 0, 'state lives under the test prefix')
})

t.test('a gateway route with algorithm gcra (defineRoute): burst + 1 at once, then 429 with Retry-After; memory and Redis', async (t) => {
  const redis = await requireRedis(t, 'gcra-route')
  const envs: Array<Record<string, string>> = [{}, { REDIS_URL, REDIS_KEY_PREFIX: redis.prefix }]
  for (const env of envs) {
    const up = await startUpstream(t)
    const gw = await startGateway(t, {
      logLevel: 'warn',
      env,
      routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: { max: 2, timeWindow: '1 minute', algorithm: 'gcra', burst: 1 } })]
    })
    const answers = await Promise.all([1, 2, 3, 4].map(async () => await request(`${gw.url}/svc/x`)))
    const statuses = answers.map((r) => r.statusCode).sort()
    for (const r of answers) await r.body.dump()
    const where = 'REDIS_URL' in env ? 'redis' : 'memory'
    t.strictSame(statuses, [200, 200, 429, 429], `${where}: burst 1 admits 2 at once`)
    t.equal(up.requests.length, 2, `${where}: the upstream saw only the admitted requests`)
    const refused = answers.find((r) => r.statusCode === 429)
    // T = 30 s; the next admission is 30 s away.
    t.equal(refused?.headers['retry-after'], '30', `${where}: Retry-After is the wait for the next admission`)
    t.equal(refused?.headers['ratelimit-limit'], '2')
    if (where === 'redis') t.ok((await redis.keys()).some((k) => k.startsWith(`${redis.prefix}g|{/svc|ip:`)), 'GCRA keys are apart from fixed-window keys (`g|`)')
  }
})

t.test('invalid gcra settings stop ready() with GW_RATE_LIMIT_CONFIG_INVALID', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    [{ max: 1, timeWindow: 1000, burst: 2 }, /burst: only with algorithm 'gcra'/],
    [{ max: 1, timeWindow: 1000, algorithm: 'fixed', burst: 2 }, /burst: only with algorithm 'gcra'/],
    [{ max: 1, timeWindow: 1000, algorithm: 'sliding' }, /algorithm/],
    [{ max: 1, timeWindow: 1000, algorithm: 'gcra', burst: -1 }, /burst/]
  ]
  for (const [rateLimit, message] of bad) {
    const app = Fastify()
    await app.register(routeRateLimitPlugin, {})
    let hit = 0
    await t.rejects(async () => {
      app.get('/x', { config: { rateLimit: rateLimit as false } }, async () => { hit++; return 'x' })
      await app.ready()
    }, { code: 'GW_RATE_LIMIT_CONFIG_INVALID', message }, JSON.stringify(rateLimit))
    t.equal(hit, 0)
    await app.close()
  }
})
