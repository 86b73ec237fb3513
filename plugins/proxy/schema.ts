/**
 * Options of the gateway-proxy plugin, its runtime, and the resolved route definition the proxy
 * registers (`ProxyRouteInput`): `defineRoute()` (src/route.ts) validates a route module's options,
 * resolves its policies against the gateway defaults, and hands the proxy this input.
 */
import type { Dispatcher } from 'undici'
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import { DEFAULT_INSPECT_MODE, DEFAULT_ROUTE_RATE_LIMIT, INSPECT_MODES, type RoutePolicySummary } from '../../lib/route-contract.js'
import type { RequestHeaderFilter } from './client-headers.js'
import type { UpstreamPool } from './upstream-pool.js'

/** Request body bytes, proxied bodies included (BODY_LIMIT, `bodyLimit`). */
export const BODY_LIMIT = Object.freeze({ minimum: 1, maximum: 1024 * 1024 * 1024, default: 1024 * 1024 })

/** Bytes of one upstream response read whole before it is sent (RESPONSE_BUFFER_BYTES, `responseBufferBytes`). */
export const RESPONSE_BUFFER_BYTES = Object.freeze({ minimum: 0, maximum: 8 * 1024 * 1024, default: 16 * 1024 })

/**
 * How long a client may read nothing of a streamed response, ms (SEND_TIMEOUT_MS,
 * `sendTimeoutMs`). The option also takes 0 (never); the variable starts at a second.
 */
export const SEND_TIMEOUT_MS = Object.freeze({ maximum: 3_600_000, default: 60_000 })

export const ProxyPluginOptionsSchema = Type.Object({
  bodyLimit: Type.Integer({ ...BODY_LIMIT, description: 'Request body bytes, enforced on streamed bodies too.' }),
  responseBufferBytes: Type.Integer({
    ...RESPONSE_BUFFER_BYTES,
    description: 'Upstream responses declaring at most this many bytes (and a Content-Type) are read whole and sent in one write; larger ones stream. 0 = stream every response.'
  }),
  sendTimeoutMs: Type.Integer({ minimum: 0, ...SEND_TIMEOUT_MS, description: 'A client that reads nothing of a streamed response for this long loses it: the upstream request ends and the client connection (HTTP/2: the stream) is reset (nginx send_timeout). 0 = never.' }),
  tls: Type.Boolean({ default: false, description: 'Whether clients reach the gateway over TLS (x-forwarded-proto).' }),
  upstreamKeepAliveTimeoutMs: Type.Integer({ minimum: 1, default: 30_000, description: 'Idle time before an upstream connection is closed.' }),
  upstreamConnectionsPerOrigin: Type.Optional(Type.Integer({ minimum: 1, description: 'Cap on connections per upstream origin (default unlimited).' })),
  upstreamPipelining: Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'HTTP/1.1 requests pipelined per upstream connection.' }),
  upstreamRejectUnauthorized: Type.Boolean({ default: true, description: 'Verify upstream TLS certificates.' }),
  upstreamCa: Type.Optional(Type.String({ description: 'Extra PEM CA bundle trusted for upstream TLS.' })),
  defaultRateLimit: Type.Union([Type.Literal(false), Type.Object({ max: Type.Integer({ minimum: 1 }), timeWindow: Type.Union([Type.Integer({ minimum: 1 }), Type.String()]) })], {
    default: { ...DEFAULT_ROUTE_RATE_LIMIT },
    description: 'Per-route limit for routes that do not set `rateLimit`.'
  }),
  defaultInspectMode: Type.Union(INSPECT_MODES.map((m) => Type.Literal(m)), { default: DEFAULT_INSPECT_MODE, description: 'Inspection mode for routes that do not set `inspect`.' }),
  stripRequestHeaders: Type.Array(Type.String({ minLength: 1 }), {
    default: [],
    description: 'Client request headers never forwarded upstream, besides the built-in list: names, or prefixes ending in `*`; case-insensitive, `_` read as `-` (STRIP_REQUEST_HEADERS).'
  }),
  trustProxy: Type.Array(Type.String({ minLength: 1 }), {
    default: [],
    description: 'Peer addresses (IPs/CIDRs) whose forwarding headers (X-Forwarded-For/-Proto/-Host/-Port, Forwarded) are kept: the list given to Fastify as `trustProxy` (TRUST_PROXY).'
  })
}, { additionalProperties: false })

export type ProxyPluginOptions = Partial<Static<typeof ProxyPluginOptionsSchema>>
export type ResolvedProxyOptions = Static<typeof ProxyPluginOptionsSchema>

/** One line of the route table printed at startup. */
export interface RouteSummary extends RoutePolicySummary {
  /** Host names the route is bound to (empty: any host). */
  readonly hosts: readonly string[]
  readonly prefix: string
  readonly targets: readonly string[]
  readonly websocket: boolean
}

/** The runtime shared by all proxied routes of one gateway. */
export interface ProxyRuntime {
  readonly options: Readonly<ResolvedProxyOptions>
  readonly routes: RouteSummary[]
  readonly pools: Set<UpstreamPool>
  /** Rate limit of routes that set none (`defineRoute()` resolves it). */
  readonly defaultRateLimit: ResolvedProxyOptions['defaultRateLimit']
  /** Inspection of routes that set none (`defineRoute()` resolves it). */
  readonly defaultInspect: { readonly mode: ResolvedProxyOptions['defaultInspectMode'] }
  /**
   * The shared Agent for a connect timeout (routes with equal settings share pools per origin);
   * with `tls`, the Agent of that client certificate (one per route's `upstreamTls`).
   */
  agentFor: (connectTimeoutMs: number, tls?: ProxyUpstreamTls) => Dispatcher
  /** Classifies client request headers: the built-in list plus `stripRequestHeaders`. */
  readonly requestHeaderFilter: RequestHeaderFilter
  /** Whether a socket peer is in `trustProxy` (undefined: none is). */
  readonly trustedPeer: ((address: string) => boolean) | undefined
  /** The shared proxy scope (proxyScopePlugin), and the instance it was registered on. */
  scope?: { readonly owner: FastifyInstance, readonly instance: FastifyInstance }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Shared proxy runtime (gateway-proxy plugin). */
    portcullisProxy: ProxyRuntime
  }
}

/** Upstream timeouts of a route: one number (connect and headers) or each. */
export type ProxyTimeout = number | { readonly connectMs?: number, readonly headersMs?: number, readonly bodyIdleMs?: number }

/** Active health checks of a route's targets. */
export interface ProxyHealthCheck {
  readonly path: string
  readonly intervalMs?: number
  readonly timeoutMs?: number
  readonly healthyThreshold?: number
  readonly unhealthyThreshold?: number
}

/** WebSocket settings of a route. */
export interface ProxyWebSocketOptions {
  readonly maxMessageBytes?: number
  readonly allowedOrigins?: readonly string[]
  readonly requireOrigin?: boolean
  readonly bearerProtocol?: boolean
  readonly maxMessagesPerSecond?: number
  readonly idleTimeoutMs?: number
}

/** A route's TLS client identity toward its upstreams (`upstreamTls`, the files already read). */
export interface ProxyUpstreamTls {
  /** PEM client certificate (chain) presented to the upstream. */
  readonly cert: string
  /** PEM private key of `cert`. */
  readonly key: string
  /** PEM CA bundle verifying the upstream instead of the gateway's (UPSTREAM_CA_FILE / system CAs). */
  readonly ca?: string
  /** TLS server name (SNI and certificate check) instead of the upstream URL's host. */
  readonly serverName?: string
}

/**
 * One route as the proxy registers it: the transport options of a validated route definition,
 * plus what the policies resolved to (the proxy does not read the policy plugins' schemas).
 */
export interface ProxyRouteInput {
  /** The route module, as messages name it (`routes/orders.ts`). */
  readonly source?: string
  /** Host names the route answers (lower case, no port; `*.example.com` = any subdomain); absent: any host. */
  readonly host?: string | readonly string[]
  readonly prefix: string
  readonly upstream: string | readonly string[]
  readonly rewritePrefix?: string
  readonly methods?: readonly string[]
  readonly timeout?: ProxyTimeout
  readonly retries?: number
  readonly healthCheck?: false | ProxyHealthCheck
  readonly circuitBreaker?: false | { readonly failureThreshold?: number, readonly cooldownMs?: number }
  readonly websocket?: boolean | ProxyWebSocketOptions
  readonly maxInFlight?: number
  /** Client certificate toward the upstreams (https targets only). */
  readonly upstreamTls?: ProxyUpstreamTls
  /** Request bodies are buffered (for inspection) instead of streamed. */
  readonly bufferBody: boolean
  /** The route's policies, as the route table shows them. */
  readonly policy: RoutePolicySummary
  /** The route's policy keys, put on the `config` of every Fastify route it registers. */
  readonly config: Readonly<Record<string, unknown>>
}
