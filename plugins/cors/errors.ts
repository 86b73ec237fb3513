/**
 * CORS errors. A preflight from an origin the route does not allow is answered by the gateway
 * (never proxied) with 403 and no CORS headers.
 */
import createError from '@fastify/error'

/** A preflight (OPTIONS) from an origin the route's `cors.origins` does not list. */
export const CorsOriginNotAllowedError = createError('GW_CORS_ORIGIN_NOT_ALLOWED', 'Origin not allowed', 403)
