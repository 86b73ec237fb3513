/**
 * Options of the overload plugin (thresholds handed to @fastify/under-pressure).
 */
import { Type, type Static } from '@sinclair/typebox'

export const OverloadOptionsSchema = Type.Object({
  maxEventLoopDelayMs: Type.Integer({ minimum: 0, maximum: 60_000, default: 1000, description: 'Mean event loop delay over one sample above which new requests get 503; 0 = off.' }),
  maxHeapUsedBytes: Type.Optional(Type.Integer({ minimum: 0, description: 'V8 heap in use above which new requests get 503; 0 = off; default 90% of the V8 heap limit.' })),
  maxRssBytes: Type.Integer({ minimum: 0, default: 0, description: 'Resident set size above which new requests get 503; 0 = off (set it below the container limit).' }),
  sampleIntervalMs: Type.Integer({ minimum: 10, maximum: 60_000, default: 1000, description: 'How often the process is sampled.' }),
  retryAfterS: Type.Integer({ minimum: 1, maximum: 3600, default: 10, description: '`Retry-After` of the 503.' })
}, { additionalProperties: false })

/** Validated options of `gateway-overload`. */
export type OverloadOptions = Static<typeof OverloadOptionsSchema>

/** Options accepted by `register(overloadPlugin, …)`; every field has a default. */
export interface OverloadPluginOptions {
  /** Mean event loop delay threshold (ms); 0 = off. Default 1000. */
  readonly maxEventLoopDelayMs?: number
  /** Heap threshold (bytes); 0 = off. Default 90% of the V8 heap limit. */
  readonly maxHeapUsedBytes?: number
  /** RSS threshold (bytes); 0 = off. Default off. */
  readonly maxRssBytes?: number
  /** Sampling period (ms). Default 1000. */
  readonly sampleIntervalMs?: number
  /** Retry-After (s) of the 503. Default 10. */
  readonly retryAfterS?: number
}
