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
  /** JWT `sub`, the consumer name of the API key, or the client certificate's field; sent upstream as `x-consumer-id`. */
  readonly id: string
  /** The strategy that authenticated the caller. */
  readonly strategy: 'jwt' | 'apiKey' | 'mtls'
  /** Scopes granted (JWT `scope`/`scp`); empty for API keys and client certificates. */
  readonly scopes: readonly string[]
  /** Verified JWT claims; undefined for API keys. */
  readonly claims?: Readonly<PortcullisClaims>
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller, or null (public route, or auth plugin not registered). */
    consumer: Consumer | null
  }
}
