/** Coded errors of the request guard (framing, path and size rules). */
import createError from '@fastify/error'

/** Request smuggling shapes: Content-Length with Transfer-Encoding, Transfer-Encoding other than exactly `chunked`, repeated or non-numeric Content-Length. */
export const BadRequestFramingError = createError('GW_REQUEST_FRAMING', 'Bad request', 400)
/** A path that is not canonical: dot segments (plain, encoded, `..;`), encoded `/` `\` NUL or controls, `//`, `\`, encoded unreserved characters, overlong or fullwidth encodings, raw non-ASCII characters (HTTP/2). */
export const NonCanonicalPathError = createError('GW_REQUEST_PATH', 'Bad request', 400)
/** A request target longer than the guard's limit (8 KiB). */
export const UriTooLongError = createError('GW_REQUEST_URI_TOO_LONG', 'URI too long', 414)
/** More header fields than the guard's limit (100). */
export const HeadersTooLargeError = createError('GW_REQUEST_HEADERS_TOO_LARGE', 'Request header fields too large', 431)
/** More than one Host, a Host that is not `host[:port]`, or an HTTP/2 `:authority` that is not one or disagrees with Host; with PUBLIC_HOSTS, a proxied request naming a host not listed. */
export const InvalidHostError = createError('GW_REQUEST_INVALID', 'Bad request', 400)
/** An HTTP/2 request target whose query holds raw non-ASCII characters (HTTP/1 parsing refuses them too). */
export const InvalidRequestTargetError = createError('GW_REQUEST_INVALID', 'Bad request', 400)
