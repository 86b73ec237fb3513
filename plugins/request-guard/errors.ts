/** Coded errors of the request guard (framing, path and size rules). */
import createError from '@fastify/error'

export const BadRequestFramingError = createError('GW_REQUEST_FRAMING', 'Bad request', 400)
export const NonCanonicalPathError = createError('GW_REQUEST_PATH', 'Bad request', 400)
export const UriTooLongError = createError('GW_REQUEST_URI_TOO_LONG', 'URI too long', 414)
export const HeadersTooLargeError = createError('GW_REQUEST_HEADERS_TOO_LARGE', 'Request header fields too large', 431)
export const InvalidHostError = createError('GW_REQUEST_INVALID', 'Bad request', 400)
