/**
 * The authenticated caller, set by the auth plugin on `request.consumer` (null when anonymous).
 * Apps type their own claims by augmenting `PortcullisClaims`.
 */

/** Claims of a verified JWT; augment this interface to type your own claims. */
export interface PortcullisClaims {
  sub?: string
  iss?: string
  aud?: string | string[]
  exp?: number
  nbf?: number
  iat?: number
  scope?: string
  scp?: string[]
  [claim: string]: unknown
}

/** Who the caller is, as decided by the auth plugin. */
export interface Consumer {
  /**
   * JWT `sub`, the consumer name of the API key, the introspected token's `sub` (else
   * `client_id`), the forward-auth service's identity header, or the client certificate's field;
   * sent upstream as `x-consumer-id`.
   */
  readonly id: string
  /** The strategy that authenticated the caller. */
  readonly strategy: 'jwt' | 'apiKey' | 'introspection' | 'forwardAuth' | 'mtls'
  /** Scopes granted (JWT `scope`/`scp`, introspection `scope`, the API key's `scopes`); empty for forward auth and client certificates. */
  readonly scopes: readonly string[]
  /** Verified JWT claims, or the introspection response; undefined for API keys and forward auth. */
  readonly claims?: Readonly<PortcullisClaims>
  /** Identity headers the forward-auth service answered with, sent upstream as they are (lower-case names). */
  readonly headers?: Readonly<Record<string, string>>
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller, or null (public route, or auth plugin not registered). */
    consumer: Consumer | null
  }
}
