/**
 * Options of the tracing plugin (`gateway-tracing`).
 */
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { ConfigError } from '../../lib/errors.js'

export const TracingOptionsSchema = Type.Object({
  sampleNewTraces: Type.Boolean({ default: true, description: 'Set the sampled flag on traces the gateway starts (the incoming sampled flag is kept).' }),
  otel: Type.Boolean({ default: false, description: 'Register @fastify/otel: a span per request, parent of the upstream call (OTEL_ENABLED). Off = not even loaded.' })
}, { additionalProperties: false })

/** Options accepted by `register(tracingPlugin, …)`. */
export type TracingPluginOptions = Partial<Static<typeof TracingOptionsSchema>>
export type TracingOptions = Readonly<Static<typeof TracingOptionsSchema>>

const check = TypeCompiler.Compile(TracingOptionsSchema)

export function resolveTracingOptions (opts: TracingPluginOptions | undefined): TracingOptions {
  const o = { sampleNewTraces: true, otel: false, ...opts }
  const problems = [...check.Errors(o)].map((e) => `${e.path.slice(1) || 'options'}: ${e.message}`)
  if (problems.length > 0) throw new ConfigError('invalid gateway-tracing options', problems)
  return Object.freeze(o)
}
