/**
 * Which client request headers may reach an upstream: the classification behind
 * rewriteUpstreamRequestHeaders (headers.ts).
 *
 * Backends behind a reverse proxy commonly trust headers that say who the caller is
 * (oauth2-proxy's X-Forwarded-User, Remote-User, Kong's X-Consumer-*, cloud load balancers'
 * identity headers, mTLS client-certificate headers), where they come from (X-Real-IP,
 * CF-Connecting-IP, ...) or how the request was addressed (X-Original-URL, X-Forwarded-Prefix).
 * A client must never be able to send them through the gateway, so every such name is dropped,
 * whatever the route and whoever the client. Forwarding headers (X-Forwarded-For/-Proto/-Host/
 * -Port, Forwarded) are dropped here too; headers.ts writes them itself and keeps the incoming
 * ones only from a TRUST_PROXY peer.
 *
 * Names are compared case-insensitively and with `_` read as `-`: nginx (underscores_in_headers
 * on), Apache and CGI/WSGI servers map `X_Forwarded_User` and `X-Forwarded-User` onto one
 * variable (HTTP_X_FORWARDED_USER), so the underscore spelling is the same header to them.
 * Such a spelling is dropped, not refused: that is what nginx does with its defaults
 * (ignore_invalid_headers on, underscores_in_headers off) and Envoy with
 * `headers_with_underscores_action: DROP_HEADER`; a 400 would add nothing the drop does not
 * already guarantee, and would tell a prober which names are protected. An underscore name
 * that maps to no protected name is forwarded unchanged.
 *
 * A name is dropped when, after that normalisation, it
 * 1. is one of EXACT_NAMES, or starts with one of PREFIXES (vendor families), or
 * 2. has, as one of its dash-separated words, one of IDENTITY_WORDS (user, email, groups,
 *    principal, ip, cert, ...), e.g. X-Proxy-User, Remote-Roles, X-Real-Client-IP,
 *    X-SSL-Client-S-DN (the words of a `user-agent` pair do not count, and the `x-amz-` and
 *    `x-goog-` request-signing namespaces of S3/GCS-compatible APIs are left alone), or
 * 3. is one the operator added (STRIP_REQUEST_HEADERS; `name` or `prefix*`).
 * The lists are documented in docs/security/headers.md.
 *
 * Cost: one Map lookup per header name on a warm gateway. A name is classified once and the
 * verdict remembered (a bounded memo: at most MEMO_ENTRIES names of at most MEMO_NAME_LENGTH
 * characters; unknown names past the bound are classified each time, never stored).
 */
import { BlockList, isIP } from 'node:net'
import { normalizeIp } from '../../lib/client-ip.js'

/** Copy the header upstream. */
export const KEEP = 0
/** Never forward it. */
export const DROP = 1
/** `authorization`: forwarded only when the route forwards credentials. */
export const AUTHORIZATION = 2
/** `max-forwards`: decremented on OPTIONS and TRACE (RFC 9110 7.6.2). */
export const MAX_FORWARDS = 3

export type HeaderClass = typeof KEEP | typeof DROP | typeof AUTHORIZATION | typeof MAX_FORWARDS

/** The forwarding headers the gateway writes itself (kept from TRUST_PROXY peers only). */
export const FORWARDING_HEADERS = ['forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-proto'] as const

/** Names dropped exactly (lower case, dashes). */
export const EXACT_NAMES: readonly string[] = Object.freeze([
  // hop-by-hop (RFC 9110 7.6.1) and httpoxy (`Proxy` becomes HTTP_PROXY in CGI environments)
  // `expect`: the gateway answers the expectation itself (request-guard/expect.ts), as nginx
  // does; the upstream request carries the whole body (and undici refuses the field).
  'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'proxy',
  // credentials and ids the gateway owns
  'x-api-key', 'x-request-id',
  // forwarding (written by the gateway) and their older spellings
  'forwarded', 'forwarded-for', 'x-forwarded', 'x-forwarded-for', 'coming-from', 'x-coming-from',
  // request routing, scheme and method overrides a backend or framework may honour
  'x-rewrite-url', 'x-host', 'x-http-host', 'x-scheme', 'x-url-scheme', 'x-http-scheme', 'x-proto',
  'front-end-https', 'x-https', 'https', 'x-script-name', 'script-name', 'x-request-uri', 'x-request-url',
  'x-waws-unencoded-url', 'x-http-method', 'x-http-method-override', 'x-method-override',
  // identity assertions and tokens (Kong, Ory Oathkeeper, Louketo, Loki/Mimir tenants, ...)
  'x-user', 'x-username', 'x-userid', 'x-userinfo', 'x-email', 'x-id-token', 'x-access-token',
  'x-refresh-token', 'x-serverless-authorization', 'x-scope-orgid',
  // client-IP headers
  'client-ip', 'true-client-ip', 'x-client-ip', 'x-cluster-client-ip', 'x-proxyuser-ip', 'x-true-client-ip',
  // client certificates (RFC 9440 and common proxy spellings)
  'client-cert', 'client-cert-chain', 'x-ssl', 'x-client-verify', 'x-client-verified', 'x-client-dn',
  'x-client-s-dn', 'x-client-i-dn',
  // SiteMinder and Shibboleth attribute headers
  'smuser', 'smuserdn', 'smuniversalid', 'smsession', 'smauthtype',
  'eppn', 'affiliation', 'unscoped-affiliation', 'entitlement', 'persistent-id', 'targeted-id'
])

/** Name prefixes dropped (vendor families; lower case, dashes). */
export const PREFIXES: readonly string[] = Object.freeze([
  // forwarding and original-request headers (X-Forwarded-User/-Email/-Groups/-Access-Token of
  // oauth2-proxy, X-Forwarded-Uri/-Prefix/-Path/-Server/-Scheme/-Ssl/-Client-Cert, X-Original-URL, ...)
  'x-forwarded-', 'x-original-', 'x-originating-', 'x-rewrite-', 'x-real-', 'x-http-method', 'x-method-',
  // hop-by-hop and proxy credentials (Proxy-Authorization, Proxy-Connection, Proxy-Client-IP)
  'proxy-',
  // gateway identity (Kong X-Consumer-*, X-Credential-Identifier, X-Anonymous-Consumer,
  // X-Authenticated-Userid/-Scope/-Groups)
  'x-consumer-', 'x-credential-', 'x-anonymous-', 'x-authenticated-',
  // auth proxies: oauth2-proxy/nginx auth_request (X-Auth-Request-*), Louketo (X-Auth-*), Remote-User
  // family (Authelia, Apache), Grafana/Gitea (X-WEBAUTH-*), Kubernetes (X-Remote-*, Impersonate-*)
  'x-auth-', 'auth-', 'remote-', 'x-remote-', 'x-webauth-', 'impersonate-',
  'x-authentik-', 'x-pomerium-', 'x-vouch-', 'tailscale-', 'teleport-', 'x-3scale-',
  'x-jwt-', 'x-ext-authz-', 'x-authz-', 'oidc-', 'shib-', 'mellon-', 'sm-', 'oam-', 'iv-',
  // service mesh (Envoy internal headers incl. X-Envoy-Internal/-External-Address, Istio)
  'x-envoy-', 'x-istio-',
  // cloud load balancers and identity-aware proxies
  'x-goog-authenticated-user-', 'x-goog-iap-', 'x-apigateway-', 'x-endpoint-api-', 'x-amzn-',
  'x-ms-client-principal', 'x-ms-token-', 'x-arr-', 'x-azure-', 'x-appengine-', 'cloudfront-',
  // CDNs (CF-Connecting-IP, Cf-Access-*, Fastly-Client-IP, Akamai-*)
  'cf-', 'fastly-', 'akamai-', 'x-akamai-',
  // TLS client-certificate headers (X-SSL-Client-*, Ssl-Client-*, X-Client-Cert*, WebLogic)
  'x-ssl-', 'ssl-', 'x-tls-', 'x-mtls-', 'x-client-cert', 'wl-proxy-'
])

/** Dash-separated words that mark a name as an identity, client-address or certificate header. */
export const IDENTITY_WORDS: readonly string[] = Object.freeze([
  'user', 'users', 'username', 'userid', 'userinfo', 'useremail', 'login', 'email', 'group', 'groups',
  'role', 'roles', 'principal', 'identity', 'authenticated', 'authuser', 'remoteuser', 'webauth',
  'impersonate', 'claim', 'claims', 'upn', 'uid',
  'ip', 'ipv4', 'ipv6', 'clientip', 'realip', 'remoteip', 'userip', 'addr', 'remoteaddr', 'clientaddr',
  'cert', 'certs', 'certificate', 'clientcert', 'dn'
])

/** Request-signing namespaces (S3/GCS-compatible APIs) the word rule leaves alone. */
const WORD_RULE_EXEMPT = ['x-amz-', 'x-goog-']

/** Names an operator may not strip: the request's framing and routing depend on them. */
const UNSTRIPPABLE = new Set(['host', 'content-length', 'transfer-encoding'])

const TOKEN = /^[!#$%&'*+.^`|~0-9a-z-]+$/

const MEMO_ENTRIES = 4096
const MEMO_NAME_LENGTH = 128

/** A header name as the lists spell it: lower case, `_` read as `-`. */
export function normalizeHeaderName (name: string): string {
  const lower = name.toLowerCase()
  return lower.includes('_') ? lower.replaceAll('_', '-') : lower
}

/**
 * The problem with an operator-supplied name (`name` or `prefix*`), or undefined.
 * Names are RFC 9110 tokens; `_` counts as `-`.
 */
export function stripNameProblem (entry: string): string | undefined {
  const star = entry.endsWith('*')
  const name = normalizeHeaderName(star ? entry.slice(0, -1) : entry)
  if (name === '' || !TOKEN.test(name) || name.includes('*')) return `"${entry}" is not a header name (or a prefix ending in *)`
  if (!star && UNSTRIPPABLE.has(name)) return `"${entry}" cannot be stripped (the request's framing needs it)`
  if (star && [...UNSTRIPPABLE].some((n) => n.startsWith(name))) return `"${entry}" would strip a header the request's framing needs`
  return undefined
}

function hasIdentityWord (name: string, words: ReadonlySet<string>): boolean {
  for (const p of WORD_RULE_EXEMPT) if (name.startsWith(p)) return false
  const parts = name.split('-')
  for (let i = 0; i < parts.length; i++) {
    const w = parts[i] as string
    if (w === 'user' && parts[i + 1] === 'agent') continue
    if (words.has(w)) return true
  }
  return false
}

/** The classifier of one gateway: the built-in lists plus the operator's names, memoised. */
export class RequestHeaderFilter {
  private readonly exact: ReadonlySet<string>
  private readonly prefixes: readonly string[]
  private readonly words: ReadonlySet<string>
  private readonly memo = new Map<string, HeaderClass>()

  /** `extra`: operator names (`name` or `prefix*`), already checked with stripNameProblem. */
  constructor (extra: readonly string[] = []) {
    const exact = new Set(EXACT_NAMES)
    const prefixes = [...PREFIXES]
    for (const entry of extra) {
      if (entry.endsWith('*')) prefixes.push(normalizeHeaderName(entry.slice(0, -1)))
      else exact.add(normalizeHeaderName(entry))
    }
    this.exact = exact
    this.prefixes = prefixes
    this.words = new Set(IDENTITY_WORDS)
  }

  /** The class of a header name as Node delivers it (lower case; any spelling is accepted). */
  classify (name: string): HeaderClass {
    const known = this.memo.get(name)
    if (known !== undefined) return known
    const verdict = this.decide(name)
    if (this.memo.size < MEMO_ENTRIES && name.length <= MEMO_NAME_LENGTH) this.memo.set(name, verdict)
    return verdict
  }

  private decide (raw: string): HeaderClass {
    const name = normalizeHeaderName(raw)
    let verdict: HeaderClass = KEEP
    if (name === 'authorization') verdict = AUTHORIZATION
    else if (name === 'max-forwards') verdict = MAX_FORWARDS
    else if (this.exact.has(name) || this.prefixes.some((p) => name.startsWith(p)) || hasIdentityWord(name, this.words)) verdict = DROP
    // Another spelling of a header with a special meaning (X_Forwarded_For, Max_Forwards) is
    // not that header to the gateway, but may become it at the backend: never forwarded.
    return verdict !== KEEP && raw.includes('_') ? DROP : verdict
  }
}

/** The filter of a gateway without operator additions. */
export const defaultRequestHeaderFilter = new RequestHeaderFilter()

/** The problem with a TRUST_PROXY entry (an IP address or CIDR), or undefined. */
export function trustedProxyProblem (entry: string): string | undefined {
  const slash = entry.indexOf('/')
  const ip = slash === -1 ? entry : entry.slice(0, slash)
  const version = isIP(ip)
  if (version === 0) return `"${entry}" is not an IP address or CIDR`
  if (slash !== -1) {
    const bits = entry.slice(slash + 1)
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > (version === 4 ? 32 : 128)) return `"${entry}" has an invalid prefix length`
  }
  return undefined
}

/** An IPv4 address as an unsigned 32-bit number, or -1. */
function ipv4Number (ip: string): number {
  let n = 0
  let part = -1
  let parts = 0
  for (let i = 0; i <= ip.length; i++) {
    const c = i === ip.length ? 46 : ip.charCodeAt(i)
    if (c === 46) {
      if (part < 0 || part > 255 || ++parts > 4) return -1
      n = n * 256 + part
      part = -1
    } else if (c >= 48 && c <= 57) {
      part = part < 0 ? c - 48 : part * 10 + c - 48
    } else {
      return -1
    }
  }
  return parts === 4 ? n : -1
}

const MAPPED = '::ffff:'
const PEER_MEMO_ENTRIES = 1024

/**
 * Whether a socket peer is one of the trusted proxies (TRUST_PROXY), or undefined when none is
 * trusted (the proxy then skips the check). Entries are checked with trustedProxyProblem.
 * IPv4 peers (IPv4-mapped ones included) are matched arithmetically; IPv6 peers through a
 * node:net BlockList, whose answer is remembered per address (bounded): a BlockList check costs
 * microseconds, and it runs on every request that carries forwarding headers.
 */
export function trustedPeerMatcher (entries: readonly string[]): ((address: string) => boolean) | undefined {
  if (entries.length === 0) return undefined
  const nets: number[] = []
  const masks: number[] = []
  const v6 = new BlockList()
  for (const entry of entries) {
    const slash = entry.indexOf('/')
    const ip = slash === -1 ? entry : entry.slice(0, slash)
    if (isIP(ip) === 4) {
      const bits = slash === -1 ? 32 : Number(entry.slice(slash + 1))
      const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
      nets.push((ipv4Number(ip) & mask) >>> 0)
      masks.push(mask)
    } else if (slash === -1) {
      v6.addAddress(ip, 'ipv6')
    } else {
      v6.addSubnet(ip, Number(entry.slice(slash + 1)), 'ipv6')
    }
  }
  const v4 = nets.length
  const memo = new Map<string, boolean>()
  return function isTrustedPeer (address: string): boolean {
    const n = ipv4Number(address.startsWith(MAPPED) ? address.slice(MAPPED.length) : address)
    if (n !== -1) {
      for (let i = 0; i < v4; i++) if (((n & (masks[i] as number)) >>> 0) === nets[i]) return true
      return false
    }
    let known = memo.get(address)
    if (known === undefined) {
      const ip = normalizeIp(address)
      known = ip !== undefined && ip.includes(':') && v6.check(ip, 'ipv6')
      if (memo.size < PEER_MEMO_ENTRIES) memo.set(address, known)
    }
    return known
  }
}
