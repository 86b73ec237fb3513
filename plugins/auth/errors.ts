/**
 * Auth error taxonomy. Messages are fixed and identical for every failure kind, so a client
 * never learns which check failed; the reason goes to the debug log as a fixed token.
 */
import createError from '@fastify/error'

/** No valid credential (missing, malformed, expired, bad signature, unknown key...). */
export const UnauthorizedError = createError('GW_AUTH_UNAUTHORIZED', 'Unauthorized', 401)
/** Authenticated, but the route's required scopes are not all granted. */
export const ForbiddenError = createError('GW_AUTH_FORBIDDEN', 'Forbidden', 403)
