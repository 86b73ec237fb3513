/**
 * The gateway's error catalogue: every `GW_*` code it can answer with (or stop at startup with),
 * each with its status, its client message and what it means. The coded error classes thrown by
 * the plugins are made from these entries, the raw answers written before HTTP parsing and the
 * mapping of Fastify's own codes read them, and docs/reference/errors.md is generated from them
 * (scripts/gen-docs.mjs). One entry per code: a code means one thing, with one status.
 *
 * Body of every answer: `{ statusCode, code, error, message }` (an entry with `requestId` adds
 * the request id). Startup errors are one family, {@link ConfigError}.
 */
import { STATUS_CODES } from 'node:http'
import createError, { type FastifyErrorConstructor } from '@fastify/error'

/** Where an answer with the code is written. */
export type ErrorSource =
  /** Thrown as the entry's coded class and rendered by the gateway's error handler. */
  | 'class'
  /** Written by the gateway's own handlers (not-found, error handler fallbacks, raw answers before HTTP parsing). */
  | 'handler'
  /** Never reaches a client: the gateway does not start (a {@link ConfigError}). */
  | 'startup'
  /** Never reaches a client: raised and handled inside the gateway. */
  | 'internal'

/** One code of the catalogue. */
export interface ErrorEntry {
  readonly code: string
  /** HTTP status; `undefined` for startup errors. */
  readonly status: number | undefined
  /** The client message (for Fastify's codes mapped here, the status phrase is sent instead). */
  readonly message: string
  /** When it is sent, in one line. */
  readonly meaning: string
  /** Where it is produced: a coded class, the gateway's handlers, startup, or internal only. */
  readonly source: ErrorSource
  /** The file that produces it, when not a coded class (for the reference). */
  readonly writtenIn?: string
  /** Fastify error codes the handler answers with this code (their text is replaced by the status phrase). */
  readonly fastifyCodes?: readonly string[]
  /** The body carries the request id (`requestId`), so a client can quote it to support. */
  readonly requestId?: boolean
  /**
   * The throwing plugin already logs the condition, rate-limited (e.g. a store outage, once per
   * interval with a count): the handler logs each occurrence at debug only.
   */
  readonly reported?: boolean
}

const entries = [
  // Authentication: one message per status, so a client never learns which check failed.
  { code: 'GW_AUTH_UNAUTHORIZED', status: 401, message: 'Unauthorized', source: 'class', meaning: 'No valid credential (missing, malformed, expired, bad signature, unknown key...).' },
  { code: 'GW_AUTH_FORBIDDEN', status: 403, message: 'Forbidden', source: 'class', meaning: 'Authenticated, but the route\'s required scopes are not all granted (or the forward-auth service answered 403).' },
  { code: 'GW_AUTH_UNAVAILABLE', status: 503, message: 'Service unavailable', source: 'class', meaning: 'The token introspection endpoint or the forward-auth service did not give a usable answer (down, timeout, 5xx, invalid response): authentication fails closed, with Retry-After.' },
  // Connection and request framing.
  { code: 'GW_CLIENT_GONE', status: 499, message: 'Client closed request', source: 'class', meaning: 'The client left before the upstream answered: the upstream request was ended (never sent to anyone).' },
  { code: 'GW_PROXY_PROTOCOL_INVALID', status: 400, message: 'Bad request', source: 'handler', writtenIn: 'src/proxy-protocol.ts', meaning: 'With PROXY_PROTOCOL on, a TRUST_PROXY peer opened a connection without a valid PROXY protocol v1/v2 header (or it came too late); answered before HTTP parsing, then the connection closes.' },
  { code: 'GW_REQUEST_TLS_REQUIRED', status: 400, message: 'This port speaks HTTPS: use https://', source: 'handler', writtenIn: 'src/tls-plain-http.ts', meaning: 'Plain HTTP arrived on the TLS listener; answered in clear text, then the connection closes.' },
  { code: 'GW_REQUEST_TIMEOUT', status: 408, message: 'Request timeout', source: 'handler', writtenIn: 'src/errors.ts', meaning: 'The request headers (HEADERS_TIMEOUT_MS) or the whole request (REQUEST_TIMEOUT_MS) did not arrive in time; the connection closes.' },
  { code: 'GW_REQUEST_FRAMING', status: 400, message: 'Bad request', source: 'class', meaning: 'Request smuggling shapes: Content-Length with Transfer-Encoding, Transfer-Encoding other than exactly `chunked`, repeated or non-numeric Content-Length.' },
  { code: 'GW_REQUEST_PATH', status: 400, message: 'Bad request', source: 'class', fastifyCodes: ['FST_ERR_BAD_URL'], meaning: 'A path that is not canonical: dot segments (plain, encoded, `..;`), encoded `/` `\\` NUL or controls, `//`, `\\`, encoded unreserved characters, overlong or fullwidth encodings, raw non-ASCII characters (HTTP/2); or a URL that does not percent-decode.' },
  { code: 'GW_REQUEST_URI_TOO_LONG', status: 414, message: 'URI too long', source: 'class', meaning: 'A request target longer than the guard\'s limit (8 KiB).' },
  { code: 'GW_REQUEST_HEADERS_TOO_LARGE', status: 431, message: 'Request header fields too large', source: 'class', meaning: 'More header fields than the guard\'s limit (100), or a header block Node\'s HTTP parser refuses as too large (then the connection closes).' },
  {
    code: 'GW_REQUEST_INVALID',
    status: 400,
    message: 'Bad request',
    source: 'class',
    fastifyCodes: ['FST_ERR_CTP_INVALID_CONTENT_LENGTH', 'FST_ERR_CTP_EMPTY_JSON_BODY', 'FST_ERR_CTP_INVALID_JSON_BODY', 'FST_ERR_VALIDATION', 'FST_ERR_ASYNC_CONSTRAINT'],
    meaning: 'More than one Host, a Host that is not `host[:port]`, or an HTTP/2 `:authority` that is not one or disagrees with Host; with PUBLIC_HOSTS, a proxied request naming a host not listed; an HTTP/2 request target whose query holds raw non-ASCII characters. A request Node\'s HTTP parser refuses (malformed request line or header, bare LF, obs-fold, NUL), or a CONNECT request (the connection closes). An empty or invalid JSON body, and any other client error raised by a library (its text is never sent).'
  },
  { code: 'GW_REQUEST_EXPECTATION_FAILED', status: 417, message: 'Expectation not supported', source: 'handler', writtenIn: 'plugins/request-guard/expect.ts', meaning: 'An `Expect` field other than `100-continue`; answered before the request reaches the gateway\'s hooks (no request id), and an HTTP/1.1 connection closes.' },
  { code: 'GW_REQUEST_UPGRADE_NOT_ALLOWED', status: 400, message: 'Upgrade not allowed', source: 'class', meaning: 'An Upgrade request outside a WebSocket-enabled route.' },
  { code: 'GW_REQUEST_BODY_TOO_LARGE', status: 413, message: 'Request body too large', source: 'class', fastifyCodes: ['FST_ERR_CTP_BODY_TOO_LARGE'], meaning: 'The request body exceeds BODY_LIMIT (declared or streamed; a buffered body, on a route with `inspect.body`, as Fastify\'s body parser reports it).' },
  { code: 'GW_REQUEST_UNSUPPORTED_MEDIA_TYPE', status: 415, message: 'Unsupported media type', source: 'class', fastifyCodes: ['FST_ERR_CTP_INVALID_MEDIA_TYPE'], meaning: 'The request body\'s media type is not on the route\'s `allowedContentTypes` list, or not declared for the operation by the route\'s OpenAPI document (or coded, on a validated operation), or a buffered body whose content type no parser accepts.' },
  { code: 'GW_ROUTE_NOT_FOUND', status: 404, message: 'Route not found', source: 'handler', writtenIn: 'src/errors.ts', meaning: 'Nothing routes there (the path is not echoed).' },
  // Policies.
  { code: 'GW_IP_FORBIDDEN', status: 403, message: 'Forbidden', source: 'class', meaning: 'The client address is denied (deny list, or not on an allow list).' },
  { code: 'GW_CORS_ORIGIN_NOT_ALLOWED', status: 403, message: 'Origin not allowed', source: 'class', meaning: 'A preflight (OPTIONS) from an origin the route\'s `cors.origins` does not list.' },
  { code: 'GW_RATE_LIMITED', status: 429, message: 'Rate limit exceeded', source: 'class', meaning: 'A limit (per IP or per route) is exhausted: 429 with Retry-After and RateLimit headers.' },
  { code: 'GW_RATE_LIMIT_STORE_UNAVAILABLE', status: 503, message: 'Service unavailable', source: 'class', reported: true, meaning: 'The shared store (Redis) failed or is unreachable and the failure mode is `closed`. The outage is logged once per interval with a count, not once per 503.' },
  { code: 'GW_RATE_LIMIT_STORE_TIMEOUT', status: 503, message: 'Rate-limit store did not answer within %d ms', source: 'internal', meaning: 'Internal (never client-visible): a store call passed REDIS_TIMEOUT_MS; the failure mode applies.' },
  { code: 'GW_INSPECT_BLOCKED', status: 403, message: 'Request blocked', source: 'class', requestId: true, meaning: 'A rule matched (or the engine timed out) on a route in block mode. The body carries `requestId`.' },
  { code: 'GW_INSPECT_BODY_INVALID', status: 400, message: 'Invalid request body', source: 'class', meaning: 'A JSON body with prototype-poisoning keys, a key twice in one object, past the depth / key-count limits, or a coded body that does not decode (same message for all).' },
  { code: 'GW_INSPECT_TOO_LARGE', status: 413, message: 'Request too large to inspect', source: 'class', meaning: 'More text than the inspection budget (`maxInspectBytes`) on a route in block mode.' },
  { code: 'GW_INSPECT_ENCODING_UNSUPPORTED', status: 415, message: 'Unsupported content encoding', source: 'class', meaning: 'A Content-Encoding inspection does not decode (or a route that refuses coded bodies), block mode.' },
  { code: 'GW_INSPECT_CHARSET_UNSUPPORTED', status: 415, message: 'Unsupported charset', source: 'class', meaning: 'A charset (or byte-order mark) inspection does not decode, block mode.' },
  // API contracts (OpenAPI, route option `openapi`).
  { code: 'GW_CONTRACT_VIOLATION', status: 400, message: 'Request does not match the API contract', source: 'class', meaning: 'A path, query, header or cookie parameter or the body breaks the operation\'s schema in the route\'s OpenAPI document (block mode), a required body is missing, or a multipart body cannot be read as written (`/body: multipart`). The body lists `violations`: the JSON pointer and rule of each failing field (`/query/limit: maximum`), never its value.' },
  { code: 'GW_CONTRACT_UNKNOWN_OPERATION', status: 404, message: 'No such operation in the API contract', source: 'class', meaning: 'The path matches no operation of the route\'s OpenAPI document (unless `unknownOperations: \'pass\'`).' },
  { code: 'GW_CONTRACT_METHOD_NOT_ALLOWED', status: 405, message: 'Method not allowed by the API contract', source: 'class', meaning: 'The path is in the route\'s OpenAPI document, the method is not; the answer carries `Allow`.' },
  { code: 'GW_CONTRACT_UNAUTHORIZED', status: 401, message: 'Authentication required by the API contract', source: 'class', meaning: 'The operation\'s security requirements need credentials and the request has none the gateway verified (a public route, or one that accepted anonymous callers).' },
  { code: 'GW_CONTRACT_FORBIDDEN', status: 403, message: 'Insufficient credentials for this operation', source: 'class', meaning: 'The caller is authenticated, but not with a scheme (API key, bearer token) or the scopes any of the operation\'s security requirements asks for.' },
  { code: 'GW_CONTRACT_RESPONSE', status: 502, message: 'Bad gateway', source: 'class', meaning: 'With `responses: \'block\'`, the upstream answered with a status the operation does not declare or a JSON body that breaks its schema; the upstream\'s answer is dropped.' },
  // Upstreams and load.
  { code: 'GW_UPSTREAM_BAD_GATEWAY', status: 502, message: 'Bad gateway', source: 'class', meaning: 'The upstream refused or reset the connection, or sent an invalid response.' },
  { code: 'GW_UPSTREAM_TIMEOUT', status: 504, message: 'Upstream timed out', source: 'class', meaning: 'Connect, response-header or body-idle timeout.' },
  { code: 'GW_UPSTREAM_UNAVAILABLE', status: 503, message: 'Service unavailable', source: 'class', meaning: 'No healthy target (all ejected, circuits open, or unresolvable).' },
  { code: 'GW_ROUTE_OVERLOADED', status: 503, message: 'Service unavailable', source: 'class', meaning: 'The route\'s cap on concurrent upstream requests is reached.' },
  { code: 'GW_OVERLOADED', status: 503, message: 'Service unavailable', source: 'class', meaning: 'The process is saturated (event loop delay, heap or RSS over its threshold).' },
  { code: 'GW_WEBSOCKET_HANDSHAKE', status: 400, message: 'Bad request', source: 'class', meaning: 'A WebSocket upgrade request that is not a valid RFC 6455 handshake.' },
  { code: 'GW_WEBSOCKET_ORIGIN', status: 403, message: 'Origin not allowed', source: 'class', meaning: 'A WebSocket handshake from an origin the route does not allow (or without one, when required).' },
  { code: 'GW_INTERNAL', status: 500, message: 'Internal Server Error', source: 'handler', writtenIn: 'src/errors.ts', meaning: 'A failure inside the gateway itself (a bug), or a 5xx raised by a library; the message is the status phrase and the cause is logged.' },
  // Startup (never sent to a client).
  { code: 'GW_CONFIG_INVALID', status: undefined, message: '(startup) invalid environment / invalid route in <file>: <problems>', source: 'startup', meaning: 'The environment, a route definition or a plugin\'s options are invalid; the gateway does not start. The message names every offending variable or option.' },
  { code: 'GW_INSPECT_CONFIG_INVALID', status: undefined, message: 'Invalid inspection configuration: <problems>', source: 'startup', meaning: 'Invalid inspect plugin options, ruleset or route `inspect` config.' },
  { code: 'GW_IP_FILTER_CONFIG_INVALID', status: undefined, message: 'Invalid IP filter configuration: <problems>', source: 'startup', meaning: 'Invalid ip-filter plugin options or route `ipFilter` / `allowedContentTypes` config.' },
  { code: 'GW_OVERLOAD_CONFIG_INVALID', status: undefined, message: 'Invalid overload configuration: <problems>', source: 'startup', meaning: 'Invalid overload plugin options.' },
  { code: 'GW_RATE_LIMIT_CONFIG_INVALID', status: undefined, message: 'Invalid rate-limit configuration: <problems>', source: 'startup', meaning: 'Invalid rate-limit plugin options or route `rateLimit` config.' }
] as const satisfies readonly ErrorEntry[]

/** Every code of the catalogue. */
export type GatewayErrorCode = typeof entries[number]['code']
/** Codes thrown as coded classes (they have a status). */
type ClassCode = Extract<typeof entries[number], { source: 'class' | 'internal' }>['code']
/** Codes of startup errors ({@link ConfigError}). */
export type ConfigErrorCode = Extract<typeof entries[number], { source: 'startup' }>['code']

/** The catalogue, in the order above (the reference sorts by code). */
export const ERROR_CATALOGUE: readonly ErrorEntry[] = Object.freeze(entries.map((e) => Object.freeze({ ...e })))

const byCode = new Map<string, ErrorEntry>(ERROR_CATALOGUE.map((e) => [e.code, e]))

/** The catalogue entry of a code, or undefined when the code is not the gateway's. */
export function errorEntry (code: string): ErrorEntry | undefined {
  return byCode.get(code)
}

/** Fastify's own client-error codes, mapped to the gateway's codes (from the entries' `fastifyCodes`). */
export const FASTIFY_CODE_MAP: Readonly<Record<string, GatewayErrorCode>> = Object.freeze(Object.fromEntries(
  entries.flatMap((e) => ('fastifyCodes' in e ? e.fastifyCodes : []).map((f) => [f, e.code]))
))

/** The coded error class of a catalogue entry (status fixed on the class). */
function errorClass<C extends ClassCode> (code: C): FastifyErrorConstructor<{ code: C, statusCode: number }> {
  const e = byCode.get(code) as ErrorEntry & { status: number }
  return createError(code, e.message, e.status)
}

export const UnauthorizedError = errorClass('GW_AUTH_UNAUTHORIZED')
export const ForbiddenError = errorClass('GW_AUTH_FORBIDDEN')
export const AuthUnavailableError = errorClass('GW_AUTH_UNAVAILABLE')
export const ClientGoneError = errorClass('GW_CLIENT_GONE')
export const BadRequestFramingError = errorClass('GW_REQUEST_FRAMING')
export const NonCanonicalPathError = errorClass('GW_REQUEST_PATH')
export const UriTooLongError = errorClass('GW_REQUEST_URI_TOO_LONG')
export const HeadersTooLargeError = errorClass('GW_REQUEST_HEADERS_TOO_LARGE')
export const InvalidRequestError = errorClass('GW_REQUEST_INVALID')
export const UpgradeNotAllowedError = errorClass('GW_REQUEST_UPGRADE_NOT_ALLOWED')
export const BodyTooLargeError = errorClass('GW_REQUEST_BODY_TOO_LARGE')
export const UnsupportedMediaTypeError = errorClass('GW_REQUEST_UNSUPPORTED_MEDIA_TYPE')
export const IpForbiddenError = errorClass('GW_IP_FORBIDDEN')
export const CorsOriginNotAllowedError = errorClass('GW_CORS_ORIGIN_NOT_ALLOWED')
export const RateLimitedError = errorClass('GW_RATE_LIMITED')
export const RateLimitStoreUnavailableError = errorClass('GW_RATE_LIMIT_STORE_UNAVAILABLE')
export const RateLimitStoreTimeoutError = errorClass('GW_RATE_LIMIT_STORE_TIMEOUT')
export const InspectBlockedError = errorClass('GW_INSPECT_BLOCKED')
export const InspectBodyInvalidError = errorClass('GW_INSPECT_BODY_INVALID')
export const InspectTooLargeError = errorClass('GW_INSPECT_TOO_LARGE')
export const InspectEncodingUnsupportedError = errorClass('GW_INSPECT_ENCODING_UNSUPPORTED')
export const InspectCharsetUnsupportedError = errorClass('GW_INSPECT_CHARSET_UNSUPPORTED')
const ContractViolationBase = errorClass('GW_CONTRACT_VIOLATION')
/** A request that breaks its route's API contract; `violations` go in the body (pointers and rules, never values). */
export class ContractViolationError extends ContractViolationBase {
  readonly violations: readonly string[]
  constructor (violations: readonly string[]) {
    super()
    this.violations = violations
  }
}
export const ContractUnknownOperationError = errorClass('GW_CONTRACT_UNKNOWN_OPERATION')
export const ContractMethodNotAllowedError = errorClass('GW_CONTRACT_METHOD_NOT_ALLOWED')
export const ContractUnauthorizedError = errorClass('GW_CONTRACT_UNAUTHORIZED')
export const ContractForbiddenError = errorClass('GW_CONTRACT_FORBIDDEN')
export const ContractResponseError = errorClass('GW_CONTRACT_RESPONSE')
export const BadGatewayError = errorClass('GW_UPSTREAM_BAD_GATEWAY')
export const UpstreamTimeoutError = errorClass('GW_UPSTREAM_TIMEOUT')
export const UpstreamUnavailableError = errorClass('GW_UPSTREAM_UNAVAILABLE')
export const RouteOverloadedError = errorClass('GW_ROUTE_OVERLOADED')
export const OverloadedError = errorClass('GW_OVERLOADED')
export const WebSocketHandshakeError = errorClass('GW_WEBSOCKET_HANDSHAKE')
export const WebSocketOriginError = errorClass('GW_WEBSOCKET_ORIGIN')

/** The JSON body of an answer with a catalogue code (its own message). */
export function errorBody (code: Exclude<GatewayErrorCode, ConfigErrorCode>): string {
  const e = byCode.get(code) as ErrorEntry & { status: number }
  return JSON.stringify({ statusCode: e.status, code, error: STATUS_CODES[e.status], message: e.message })
}

/**
 * A raw HTTP/1.1 error response for a catalogue code, in the gateway's body shape; the connection
 * closes after it. For answers written on the socket before (or outside) HTTP parsing.
 */
export function rawResponse (code: Exclude<GatewayErrorCode, ConfigErrorCode>): string {
  const status = (byCode.get(code) as ErrorEntry & { status: number }).status
  const body = errorBody(code)
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n${body}`
}

/**
 * Thrown at startup when the environment, a route definition or a plugin's options are invalid:
 * the one family of configuration errors. `where` is what every problem is about (a route file);
 * `''` when each problem already names its variable or file. `code` is GW_CONFIG_INVALID unless
 * a plugin has its own startup code.
 */
export class ConfigError extends Error {
  readonly code: ConfigErrorCode
  readonly problems: readonly string[]
  readonly context: string
  readonly where: string | undefined
  constructor (context: string, problems: readonly string[], where?: string, options?: { code?: ConfigErrorCode, cause?: unknown }) {
    super(`${context}: ${problems.join('; ')}`, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ConfigError'
    this.code = options?.code ?? 'GW_CONFIG_INVALID'
    this.context = context
    this.problems = problems
    this.where = where
  }

  /** One printable line per problem, each naming its variable or file. */
  lines (): string[] {
    const subject = this.where ?? this.context
    return this.problems.map((p) => subject === '' ? p : `${subject}: ${p}`)
  }
}

/** A maker of a plugin's startup error: `invalid(problems)` for options validation. */
export type ConfigErrorMaker = (problems: readonly string[], cause?: unknown) => ConfigError

/** The startup-error maker of a plugin with its own code (`Invalid inspection configuration: <problems>`). */
export function pluginConfigError (context: string, code: ConfigErrorCode): ConfigErrorMaker {
  return (problems, cause) => new ConfigError(context, problems, undefined, { code, cause })
}
