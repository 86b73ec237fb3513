/**
 * IP filter error taxonomy. Messages are generic: a client never learns which list matched.
 */
import createError from '@fastify/error'

/** The client address is denied (deny list, or not on an allow list). */
export const IpForbiddenError = createError('GW_IP_FORBIDDEN', 'Forbidden', 403)
/**
 * The request body's media type is not on the route's `allowedContentTypes` list. Same code as
 * Fastify's own unsupported-media-type rejection, so a client sees one code for one condition.
 */
export const UnsupportedMediaTypeError = createError('GW_REQUEST_UNSUPPORTED_MEDIA_TYPE', 'Unsupported media type', 415)
/** Invalid plugin options or route `ipFilter` / `allowedContentTypes` config (startup only). */
export const IpFilterConfigError = createError('GW_IP_FILTER_CONFIG_INVALID', 'Invalid IP filter configuration: %s', 500)
