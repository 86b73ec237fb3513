/**
 * A bearer token a WebSocket handshake carried outside `Authorization`: browsers cannot set
 * headers on a handshake, so a route may accept the token as one `Sec-WebSocket-Protocol` offer
 * (`portcullis.bearer.<jwt>`). The proxy takes it out of the offer list (it never goes upstream or
 * back in the 101) and puts it here in an onRequest hook of the route's context, which runs before
 * the auth plugin's route-level hook; the auth plugin reads it as it reads `Authorization: Bearer`.
 */

/** The `Sec-WebSocket-Protocol` offer that carries a bearer token: this prefix, then the token. */
export const BEARER_PROTOCOL_PREFIX = 'portcullis.bearer.'

/** Request slot of the token taken from a handshake's subprotocol offers. */
export const kUpgradeBearer: unique symbol = Symbol.for('portcullis.upgradeBearer')

declare module 'fastify' {
  interface FastifyRequest {
    /** A bearer token taken from the handshake's `Sec-WebSocket-Protocol` offers (WebSocket routes with `bearerProtocol`). */
    [kUpgradeBearer]?: string
  }
}
