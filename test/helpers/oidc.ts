/**
 * A real OAuth 2 / OpenID Connect server (oidc-provider 9) on 127.0.0.1:0 for end-to-end auth
 * tests: one confidential client with the client_credentials grant, and a resource server whose
 * access tokens are JWTs (RFC 9068) signed by the provider's JWKS.
 *
 * `rotateKeys()` swaps in a new provider instance with a fresh signing key on the same port
 * (optionally still publishing the previous key), so tests can prove the gateway follows the
 * JWKS without a restart. `jwksFetches()` counts requests to the JWKS endpoint.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto'
import type { AddressInfo, Socket } from 'node:net'
import { request } from 'undici'

interface Teardown { teardown: (fn: () => unknown) => void }

/** The parts of oidc-provider this helper uses (the package ships no TypeScript types). */
interface OidcProvider { callback: () => (req: IncomingMessage, res: ServerResponse) => void }
interface OidcModule {
  default: new (issuer: string, configuration: Record<string, unknown>) => OidcProvider
  errors: { InvalidTarget: new (message?: string) => Error }
}
// A non-literal specifier keeps tsc from looking for declarations the package does not ship.
const OIDC_PROVIDER: string = 'oidc-provider'

export interface OidcOptions {
  /** Scopes the resource server offers (default `orders:read orders:write`). */
  readonly scopes?: string
  /** Access token lifetime in seconds (default 300). */
  readonly accessTokenTtlS?: number
  /** `opaque` issues opaque access tokens, checked through token introspection (default `jwt`). */
  readonly accessTokenFormat?: 'jwt' | 'opaque'
}

export interface TestOidc {
  readonly issuer: string
  readonly jwksUrl: string
  readonly tokenUrl: string
  /** The resource indicator (RFC 8707); also the access tokens' `aud`. */
  readonly resource: string
  readonly clientId: string
  /** Requests a client_credentials access token (a JWT) for `scope`. */
  getToken: (scope?: string) => Promise<string>
  /** Signs with a new key from now on; the previous key stays published when `keepPrevious`. */
  rotateKeys: (opts?: { keepPrevious?: boolean }) => Promise<string>
  /** The kid that currently signs. */
  currentKid: () => string
  /** Requests received by the JWKS endpoint so far. */
  jwksFetches: () => number
  /** The RFC 7662 introspection endpoint (client_secret_basic with clientId/clientSecret). */
  readonly introspectionUrl: string
  readonly clientSecret: string
  /** Requests received by the introspection endpoint so far. */
  introspectionCalls: () => number
  /** Revokes a token (RFC 7009): it introspects as inactive from then on. */
  revoke: (token: string) => Promise<void>
}

/** The gateway's environment for token introspection at `idp` (its issuer and audience checked). */
export function introspectionEnv (idp: TestOidc): Record<string, string> {
  return {
    INTROSPECTION_URL: idp.introspectionUrl,
    INTROSPECTION_CLIENT_ID: idp.clientId,
    INTROSPECTION_CLIENT_SECRET: idp.clientSecret,
    INTROSPECTION_ISSUER: idp.issuer,
    INTROSPECTION_AUDIENCE: idp.resource
  }
}

/** In-memory storage for the provider's artifacts (one per test server). */
function memoryAdapter (): new (name: string) => object {
  const store = new Map<string, unknown>()
  return class MemoryAdapter {
    readonly name: string
    constructor (name: string) { this.name = name }
    async upsert (id: string, payload: unknown): Promise<void> { store.set(`${this.name}:${id}`, payload) }
    async find (id: string): Promise<unknown> { return store.get(`${this.name}:${id}`) }
    async findByUid (): Promise<undefined> { return undefined }
    async findByUserCode (): Promise<undefined> { return undefined }
    async consume (): Promise<void> {}
    async destroy (id: string): Promise<void> { store.delete(`${this.name}:${id}`) }
    async revokeByGrantId (): Promise<void> {}
  }
}

function newSigningKey (): Record<string, unknown> {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return { ...privateKey.export({ format: 'jwk' }), kid: `k-${randomUUID()}`, alg: 'RS256', use: 'sig' }
}

/** Starts the provider; closed on teardown. */
export async function startOidc (t: Teardown, opts: OidcOptions = {}): Promise<TestOidc> {
  const { default: Provider, errors } = await import(OIDC_PROVIDER) as OidcModule
  const scopes = opts.scopes ?? 'orders:read orders:write'
  const ttl = opts.accessTokenTtlS ?? 300
  const clientId = 'gateway-test-client'
  const clientSecret = randomBytes(24).toString('base64url')
  const cookieKey = randomBytes(24).toString('base64url')

  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined
  let jwksFetches = 0
  let introspectionCalls = 0
  const sockets = new Set<Socket>()
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/jwks') === true) jwksFetches++
    if (req.url?.startsWith('/token/introspection') === true) introspectionCalls++
    if (handler === undefined) {
      res.writeHead(503).end()
      return
    }
    handler(req, res)
  })
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const issuer = `http://127.0.0.1:${port}`
  const resource = 'https://api.portcullis.test'

  const adapter = memoryAdapter()
  let keys: Array<Record<string, unknown>> = []
  function install (): void {
    const provider = new Provider(issuer, {
      clients: [{
        client_id: clientId,
        client_secret: clientSecret,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: scopes
      }],
      jwks: { keys },
      scopes: scopes.split(' '),
      adapter,
      ttl: { ClientCredentials: ttl },
      cookies: { keys: [cookieKey] },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        introspection: { enabled: true, allowedPolicy: async () => true },
        revocation: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => resource,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: unknown, indicator: string) => {
            if (indicator !== resource) throw new errors.InvalidTarget()
            return { scope: scopes, audience: resource, accessTokenTTL: ttl, ...(opts.accessTokenFormat === 'opaque' ? { accessTokenFormat: 'opaque' } : { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }) }
          }
        }
      }
    })
    handler = provider.callback()
  }
  keys = [newSigningKey()]
  install()

  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  })

  const basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`
  return {
    issuer,
    introspectionUrl: `${issuer}/token/introspection`,
    clientSecret,
    introspectionCalls: () => introspectionCalls,
    async revoke (token: string) {
      const res = await request(`${issuer}/token/revocation`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString()
      })
      await res.body.dump()
      if (res.statusCode !== 200) throw new Error(`revocation failed: ${res.statusCode}`)
    },
    jwksUrl: `${issuer}/jwks`,
    tokenUrl: `${issuer}/token`,
    resource,
    clientId,
    async getToken (scope = scopes) {
      const res = await request(`${issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope, resource }).toString()
      })
      const body = await res.body.json() as Record<string, unknown>
      if (res.statusCode !== 200 || typeof body.access_token !== 'string') {
        throw new Error(`token request failed: ${res.statusCode} ${JSON.stringify(body)}`)
      }
      return body.access_token
    },
    async rotateKeys ({ keepPrevious = false } = {}) {
      const next = newSigningKey()
      keys = keepPrevious ? [next, ...keys] : [next]
      install()
      return next.kid as string
    },
    currentKid: () => keys[0]?.kid as string,
    jwksFetches: () => jwksFetches
  }
}
