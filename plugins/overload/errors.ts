/**
 * Overload error taxonomy: a generic 503 with Retry-After; the cause (event loop, heap, RSS) goes
 * to the log only.
 */
import createError from '@fastify/error'

/** The process is saturated (event loop delay, heap or RSS over its threshold). */
export const OverloadedError = createError('GW_OVERLOADED', 'Service unavailable', 503)
/** Invalid plugin options (startup only). */
export const OverloadConfigError = createError('GW_OVERLOAD_CONFIG_INVALID', 'Invalid overload configuration: %s', 500)
