/**
 * Inspection error taxonomy. Bodies are generic: a client never learns which rule matched.
 * The gateway error handler renders `{ statusCode, code, error, message }`; a block also carries
 * the request id (`requestId` on the error) so a blocked customer can quote it to support.
 */
import createError from '@fastify/error'

const InspectBlockedBase = createError('GW_INSPECT_BLOCKED', 'Request blocked', 403)

/** A rule matched (or the engine timed out) on a route in block mode. */
export class InspectBlockedError extends InspectBlockedBase {
  /** The id of the blocked request, for the client body and support. */
  readonly requestId: string
  constructor (requestId: string) {
    super()
    this.requestId = requestId
  }
}

/**
 * A JSON body with prototype-poisoning keys, a key twice in one object, past the depth / key-count
 * limits, or a coded body that does not decode (same message for all).
 */
export const InspectBodyInvalidError = createError('GW_INSPECT_BODY_INVALID', 'Invalid request body', 400)
/** More text than the inspection budget (`maxInspectBytes`) on a route in block mode. */
export const InspectTooLargeError = createError('GW_INSPECT_TOO_LARGE', 'Request too large to inspect', 413)
/** Invalid plugin options, ruleset or route `inspect` config (startup only). */
export const InspectConfigError = createError('GW_INSPECT_CONFIG_INVALID', 'Invalid inspection configuration: %s', 500)
/** A Content-Encoding inspection does not decode (or a route that refuses coded bodies), block mode. */
export const InspectEncodingUnsupportedError = createError('GW_INSPECT_ENCODING_UNSUPPORTED', 'Unsupported content encoding', 415)
/** A charset (or byte-order mark) inspection does not decode, block mode. */
export const InspectCharsetUnsupportedError = createError('GW_INSPECT_CHARSET_UNSUPPORTED', 'Unsupported charset', 415)
