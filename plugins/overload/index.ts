/**
 * portcullis-overload: load shedding on @fastify/under-pressure. When the sampled event loop delay,
 * V8 heap or RSS is over its threshold, new requests get 503 GW_OVERLOADED with Retry-After at
 * once (global `onRequest` hook of under-pressure: the earlier it is registered, the less work a
 * shed request costs) instead of queueing behind the saturated process.
 *
 * Config key: routes with `config.overload: false` are exempt (the health routes: /healthz must
 * answer, and /readyz reports the state itself through `fastify.isUnderPressure()`).
 * The event loop delay sampled while the app starts is not load: requests are not shed for it in
 * the first two sample intervals after ready (the heap and RSS thresholds still apply).
 * Decorators (from under-pressure): `isUnderPressure(): boolean`, `memoryUsage()`.
 * Errors: GW_OVERLOADED (503), GW_OVERLOAD_CONFIG_INVALID (startup).
 */
import { getHeapStatistics } from 'node:v8'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { compileOptions } from '../../lib/validate.js'
import { OverloadedError, pluginConfigError } from '../../lib/errors.js'
import { OverloadOptionsSchema, type OverloadOptions, type OverloadPluginOptions } from './schema.js'

export type { OverloadPluginOptions } from './schema.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `false`: this route is never shed under overload (health routes). */
    overload?: false
  }
}

/** Share of the V8 heap limit used as the default heap threshold. */
const DEFAULT_HEAP_SHARE = 0.9
/** under-pressure's pressure type for the event loop delay, and its histogram's resolution. */
const TYPE_EVENT_LOOP_DELAY = 'eventLoopDelay'
const EVENT_LOOP_RESOLUTION_MS = 10

async function gatewayOverload (fastify: FastifyInstance, rawOptions: OverloadPluginOptions): Promise<void> {
  const options = compileOptions<OverloadOptions>(OverloadOptionsSchema, rawOptions ?? {}, pluginConfigError('Invalid overload configuration', 'GW_OVERLOAD_CONFIG_INVALID'))
  const maxHeapUsedBytes = options.maxHeapUsedBytes ?? Math.floor(getHeapStatistics().heap_size_limit * DEFAULT_HEAP_SHARE)
  const retryAfter = String(options.retryAfterS)

  // The event loop delay of the sample taken while the app was starting (a million API keys
  // hashed, a large ruleset loaded) measures startup, not load: it must not shed the first
  // requests. That sample, or the one in progress at ready, is replaced within two intervals.
  let settledAt = Infinity
  fastify.addHook('onReady', async function overloadReady () {
    settledAt = Date.now() + 2 * options.sampleIntervalMs + EVENT_LOOP_RESOLUTION_MS
  })

  /** The memory thresholds, which under-pressure checks after the loop delay's (and so skips when that one is over). */
  function overMemory (): boolean {
    const m = fastify.memoryUsage()
    return (maxHeapUsedBytes > 0 && m.heapUsed > maxHeapUsedBytes) || (options.maxRssBytes > 0 && m.rssBytes > options.maxRssBytes)
  }

  async function overloadPressureHandler (request: FastifyRequest, reply: FastifyReply, type: string, value: number | undefined): Promise<void> {
    if (request.routeOptions.config.overload === false) return
    if (type === TYPE_EVENT_LOOP_DELAY && Date.now() < settledAt && !overMemory()) return
    request.log.debug({ type, value }, 'overloaded: request shed')
    reply.header('retry-after', retryAfter)
    throw new OverloadedError()
  }

  await fastify.register(underPressure, {
    maxEventLoopDelay: options.maxEventLoopDelayMs,
    maxHeapUsedBytes,
    maxRssBytes: options.maxRssBytes,
    sampleInterval: options.sampleIntervalMs,
    retryAfter: options.retryAfterS,
    pressureHandler: overloadPressureHandler
  })
}

/**
 * Load shedding; needs no other plugin:
 * `app.register(overloadPlugin, {})`; `/readyz` answers 503 while `app.isUnderPressure()`.
 */
export const overloadPlugin = fp(gatewayOverload, {
  name: 'portcullis-overload',
  fastify: '5.x',
  dependencies: []
})
export default overloadPlugin
