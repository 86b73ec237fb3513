/**
 * Proxy error taxonomy. Every upstream failure maps to one of these; the original error is kept
 * as `cause` for the log and never reaches the client.
 */
import createError from '@fastify/error'

/** Base of every upstream failure (502 family). */
export const UpstreamError = createError('GW_UPSTREAM_ERROR', 'Bad gateway', 502)
// @fastify/error declares its `Base` as an ErrorConstructor (with V8's static stack-trace API),
// which the error classes it makes are not declared to be, though they serve as one.
const UpstreamBase = UpstreamError as unknown as ErrorConstructor
/** Refused, reset, or an invalid response. */
export const BadGatewayError = createError('GW_UPSTREAM_BAD_GATEWAY', 'Bad gateway', 502, UpstreamBase)
/** Connect, response-header or body-idle timeout. */
export const UpstreamTimeoutError = createError('GW_UPSTREAM_TIMEOUT', 'Upstream timed out', 504, UpstreamBase)
/** No healthy target (all ejected, circuits open, or unresolvable). */
export const UpstreamUnavailableError = createError('GW_UPSTREAM_UNAVAILABLE', 'Service unavailable', 503, UpstreamBase)
/** The route's cap on concurrent upstream requests is reached. */
export const RouteOverloadedError = createError('GW_ROUTE_OVERLOADED', 'Service unavailable', 503)
/** The request body exceeds BODY_LIMIT (declared or streamed). */
export const BodyTooLargeError = createError('GW_REQUEST_BODY_TOO_LARGE', 'Request body too large', 413)
/** The client left before the upstream answered: the upstream request was ended (never sent to anyone). */
export const ClientGoneError = createError('GW_CLIENT_GONE', 'Client closed request', 499)
/** An Upgrade request outside a WebSocket-enabled route. */
export const UpgradeNotAllowedError = createError('GW_REQUEST_UPGRADE_NOT_ALLOWED', 'Upgrade not allowed', 400)
/** A WebSocket upgrade request that is not a valid RFC 6455 handshake. */
export const WebSocketHandshakeError = createError('GW_WEBSOCKET_HANDSHAKE', 'Bad request', 400)
/** A WebSocket handshake from an origin the route does not allow (or without one, when required). */
export const WebSocketOriginError = createError('GW_WEBSOCKET_ORIGIN', 'Origin not allowed', 403)
