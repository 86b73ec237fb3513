/**
 * Options of the metrics plugin (`gateway-metrics`): where the admin listener binds.
 */
import { hostname } from 'node:os'
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { ConfigError } from '../../lib/errors.js'

/** Rules shared with the environment (ADMIN_HOST, INSTANCE_ID in src/config-schema.ts). */
export const DEFAULT_ADMIN_HOST = '127.0.0.1'
/** The `instance` label value (INSTANCE_ID, `instance`). */
export const INSTANCE_PATTERN = '^[A-Za-z0-9_.:-]{1,128}$'

export const MetricsOptionsSchema = Type.Object({
  port: Type.Integer({ minimum: 0, maximum: 65535, description: 'Admin listener port for GET /metrics (ADMIN_PORT; 0 = any free port).' }),
  host: Type.String({ minLength: 1, default: DEFAULT_ADMIN_HOST, description: 'Admin listen address (ADMIN_HOST); never the public interface unless deliberate.' }),
  processMetrics: Type.Boolean({ default: true, description: 'Also export process metrics (CPU, memory, event-loop lag, GC).' }),
  maxRouteLabels: Type.Integer({ minimum: 1, maximum: 10_000, default: 500, description: 'Distinct route label values kept; beyond that, `(other)`.' }),
  instance: Type.Optional(Type.String({ pattern: INSTANCE_PATTERN, description: 'Value of the `instance` label on every series (INSTANCE_ID; default `<hostname>-<pid>`), so series of several gateway processes never merge.' }))
}, { additionalProperties: false })

/** Options accepted by `register(metricsPlugin, …)`. */
export type MetricsPluginOptions = Partial<Static<typeof MetricsOptionsSchema>> & { port: number }

/** This process: the host name and the pid (two workers of one host differ). */
export function defaultInstance (): string {
  const host = hostname().replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 100)
  return `${host === '' ? 'host' : host}-${process.pid}`
}
/** Validated, frozen options. */
export type MetricsOptions = Readonly<Static<typeof MetricsOptionsSchema>>

const check = TypeCompiler.Compile(MetricsOptionsSchema)

export function resolveMetricsOptions (opts: MetricsPluginOptions | undefined): MetricsOptions {
  const o = { host: DEFAULT_ADMIN_HOST, processMetrics: true, maxRouteLabels: 500, ...opts }
  if (o.instance === undefined) o.instance = defaultInstance()
  const problems = [...check.Errors(o)].map((e) => `${e.path.slice(1) || 'options'}: ${e.message}`)
  if (problems.length > 0) throw new ConfigError('invalid gateway-metrics options', problems)
  return Object.freeze(o) as MetricsOptions
}
