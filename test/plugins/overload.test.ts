import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import { gatewayErrorHandler } from '../../src/errors.js'
import { overloadPlugin, type OverloadPluginOptions } from '../../plugins/overload/index.js'
import { waitFor } from '../helpers/wait-for.js'

interface Harness { app: FastifyInstance, hits: () => number }

async function build (t: Test, options: OverloadPluginOptions, blockAtStartupMs = 0): Promise<Harness> {
  const app = Fastify()
  app.setErrorHandler(gatewayErrorHandler)
  await app.register(overloadPlugin, options)
  if (blockAtStartupMs > 0) {
    // a plugin that blocks the loop while the app starts (as a million API keys being hashed does)
    await app.register(async () => {
      const end = Date.now() + blockAtStartupMs
      while (Date.now() < end) { /* synchronous startup work */ }
    })
  }
  let hits = 0
  app.get('/api', async () => { hits++; return { ok: true } })
  app.get('/healthz', { config: { overload: false } }, async () => ({ status: 'ok' }))
  app.get('/readyz', { config: { overload: false } }, async (request, reply) => {
    if (app.isUnderPressure()) return await reply.code(503).header('retry-after', '10').send({ status: 'overloaded' })
    return { status: 'ready' }
  })
  t.teardown(() => app.close())
  await app.ready()
  return { app, hits: () => hits }
}

/** Whether `predicate` comes to hold (polled, with a timeout that only guards against a hang). */
async function until (predicate: () => boolean): Promise<boolean> {
  return await waitFor(predicate, { intervalMs: 5 }).then(() => true, () => false)
}

t.test('heap over its threshold: 503 GW_OVERLOADED with Retry-After at once; health routes exempt; readyz reports it', async (t) => {
  const h = await build(t, { maxHeapUsedBytes: 1, sampleIntervalMs: 10, retryAfterS: 7 })
  t.ok(await until(() => h.app.isUnderPressure()), 'the sampler saw the heap over 1 byte')
  const res = await h.app.inject('/api')
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '7')
  t.strictSame(res.json(), { statusCode: 503, code: 'GW_OVERLOADED', error: 'Service Unavailable', message: 'Service unavailable' })
  t.equal(h.hits(), 0, 'the handler never ran')
  t.equal((await h.app.inject('/healthz')).statusCode, 200, '/healthz is exempt')
  const ready = await h.app.inject('/readyz')
  t.equal(ready.statusCode, 503, '/readyz reports the overload')
})

t.test('event loop delay over its threshold sheds new requests', async (t) => {
  const h = await build(t, { maxEventLoopDelayMs: 100, sampleIntervalMs: 50, maxHeapUsedBytes: 0 })
  t.equal((await h.app.inject('/api')).statusCode, 200)
  const end = Date.now() + 600
  while (Date.now() < end) { /* saturate the event loop */ }
  t.ok(await until(() => h.app.isUnderPressure()), 'the sampler saw the blocked loop')
  const res = await h.app.inject('/api')
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'GW_OVERLOADED')
  t.equal(h.hits(), 1)
  t.ok(await until(() => !h.app.isUnderPressure()), 'recovers once the loop is free')
  t.equal((await h.app.inject('/api')).statusCode, 200)
})

t.test('a loop blocked while the app starts is not load: the first requests are served, later blocking still sheds', async (t) => {
  const h = await build(t, { maxEventLoopDelayMs: 100, sampleIntervalMs: 200, maxHeapUsedBytes: 0 }, 700)
  t.ok(await until(() => h.app.isUnderPressure()), 'the sampler saw the startup block')
  const first = await h.app.inject('/api')
  t.equal(first.statusCode, 200, 'served, not shed for the startup sample')
  t.equal(h.hits(), 1)
  t.ok(await until(() => !h.app.isUnderPressure()), 'the startup sample is replaced')
  // Past the settle window (two 200 ms sample intervals after ready), which the plugin keeps by
  // the clock: nothing to await.
  await sleep(250)
  const end = Date.now() + 700
  while (Date.now() < end) { /* saturate the event loop while serving */ }
  t.ok(await until(() => h.app.isUnderPressure()), 'the sampler saw the blocked loop')
  t.equal((await h.app.inject('/api')).statusCode, 503, 'a blocked loop after startup sheds')
})

t.test('defaults: serving normally, thresholds on', async (t) => {
  const h = await build(t, {})
  t.equal(h.app.isUnderPressure(), false)
  t.equal((await h.app.inject('/api')).statusCode, 200)
  t.equal((await h.app.inject('/readyz')).statusCode, 200)
  t.equal(typeof h.app.memoryUsage().heapUsed, 'number')
})

t.test('invalid options: ready() rejects with GW_OVERLOAD_CONFIG_INVALID', async (t) => {
  const bad: OverloadPluginOptions[] = [
    { maxEventLoopDelayMs: -1 },
    { maxHeapUsedBytes: 1.5 },
    { sampleIntervalMs: 1 },
    { retryAfterS: 0 },
    { maxRss: 1 } as OverloadPluginOptions
  ]
  for (const options of bad) {
    await t.rejects(async () => await Fastify().register(overloadPlugin, options).ready(), { code: 'GW_OVERLOAD_CONFIG_INVALID' }, JSON.stringify(options))
  }
})
