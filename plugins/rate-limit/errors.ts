/**
 * Rate-limit error taxonomy. Bodies are generic; the gateway error handler renders
 * `{ statusCode, code, error, message }`.
 */
import createError from '@fastify/error'
import { kReported } from '../../src/errors.js'

/** A limit (per IP or per route) is exhausted: 429 with Retry-After and RateLimit headers. */
export const RateLimitedError = createError('GW_RATE_LIMITED', 'Rate limit exceeded', 429)
/**
 * The shared store (Redis) failed or is unreachable and the failure mode is `closed`. The outage
 * is logged once per interval with a count, not once per 503.
 */
export const RateLimitStoreUnavailableError = createError('GW_RATE_LIMIT_STORE_UNAVAILABLE', 'Service unavailable', 503)
Object.defineProperty(RateLimitStoreUnavailableError.prototype, kReported, { value: true })
/** Internal (never client-visible): a store call passed REDIS_TIMEOUT_MS; the failure mode applies. */
export const RateLimitStoreTimeoutError = createError('GW_RATE_LIMIT_STORE_TIMEOUT', 'Rate-limit store did not answer within %d ms', 503)
/** Invalid plugin options or route `rateLimit` config (startup only). */
export const RateLimitConfigError = createError('GW_RATE_LIMIT_CONFIG_INVALID', 'Invalid rate-limit configuration: %s', 500)
