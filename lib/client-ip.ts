/**
 * Client address helpers shared by the IP filter and the rate limits.
 *
 * The address is `request.ip`: Fastify derives it from the socket, or from `x-forwarded-for` only
 * when the peer is in TRUST_PROXY (the server's `trustProxy` list). These helpers only normalise:
 * an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is the IPv4 address, and for rate limiting an
 * IPv6 client is its /64 (one subscriber usually owns a whole /64, so per-address buckets would be
 * free to mint). Pure string work: no regex compilation, no allocation for IPv4 beyond the result.
 */
import { isIPv4, isIPv6 } from 'node:net'

/** Rate-limit key for anything that is not an IP address (a trusted proxy forwarding garbage). */
export const INVALID_CLIENT_KEY = 'invalid'

const MAPPED_PREFIX = '::ffff:'

/**
 * Expands a valid IPv6 address (zone already removed, lower case) to its eight 16-bit groups.
 * An embedded dotted IPv4 tail counts as the last two groups.
 */
function ipv6Groups (ip: string): number[] {
  const out: number[] = []
  const gap = ip.indexOf('::')
  const head = gap === -1 ? ip : ip.slice(0, gap)
  const tail = gap === -1 ? '' : ip.slice(gap + 2)
  const headParts = head === '' ? [] : head.split(':')
  const tailParts = tail === '' ? [] : tail.split(':')
  const pushPart = (p: string): void => {
    if (p.includes('.')) {
      const o = p.split('.')
      out.push((Number(o[0]) << 8) | Number(o[1]), (Number(o[2]) << 8) | Number(o[3]))
    } else {
      out.push(parseInt(p, 16))
    }
  }
  for (const p of headParts) pushPart(p)
  const tailStart = out.length
  for (const p of tailParts) pushPart(p)
  if (out.length < 8) out.splice(tailStart, 0, ...new Array<number>(8 - out.length).fill(0))
  return out
}

function stripZone (ip: string): string {
  const pct = ip.indexOf('%')
  return (pct === -1 ? ip : ip.slice(0, pct)).toLowerCase()
}

/**
 * Normalises an address: IPv4 stays as is, an IPv4-mapped IPv6 address becomes IPv4, other IPv6
 * addresses are lower-cased without a zone. Returns undefined when `ip` is not an IP address.
 */
export function normalizeIp (ip: string): string | undefined {
  if (!ip.includes(':')) return isIPv4(ip) ? ip : undefined
  if (!isIPv6(ip)) return undefined
  const v6 = stripZone(ip)
  if (v6.startsWith(MAPPED_PREFIX)) {
    const rest = v6.slice(MAPPED_PREFIX.length)
    if (isIPv4(rest)) return rest
  }
  const g = ipv6Groups(v6)
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `${g[6] >> 8}.${g[6] & 0xff}.${g[7] >> 8}.${g[7] & 0xff}`
  }
  return v6
}

/**
 * The rate-limit key of an address: the IPv4 address, or the /64 prefix of an IPv6 address
 * written canonically (`2001:db8:0:1::/64`), or INVALID_CLIENT_KEY for anything else, so every
 * malformed forwarded address shares one bucket instead of minting fresh ones.
 */
export function clientKeyOf (ip: string): string {
  if (!ip.includes(':')) return isIPv4(ip) ? ip : INVALID_CLIENT_KEY
  const normal = normalizeIp(ip)
  if (normal === undefined) return INVALID_CLIENT_KEY
  if (!normal.includes(':')) return normal
  const g = ipv6Groups(normal)
  return `${g[0].toString(16)}:${g[1].toString(16)}:${g[2].toString(16)}:${g[3].toString(16)}::/64`
}

/** The normalised client address of a request (see normalizeIp), or undefined if invalid. */
export function clientIp (request: { readonly ip: string }): string | undefined {
  return normalizeIp(request.ip)
}

/**
 * Per-request memo of the client key. `request.ip` re-parses x-forwarded-for on every read when
 * TRUST_PROXY is set (about 2 us), and both rate-limit tiers need the key. Plugins that call
 * `clientKey` declare it with `decorateClientKey` so the request shape stays stable.
 */
export const kClientKey = Symbol('portcullis.clientKey')

/** Declares the memo on the request (idempotent; call at registration). */
export function decorateClientKey (fastify: { hasRequestDecorator: (name: symbol) => boolean, decorateRequest: (name: symbol, value: null) => unknown }): void {
  if (!fastify.hasRequestDecorator(kClientKey)) fastify.decorateRequest(kClientKey, null)
}

/** The rate-limit key of a request's client (see clientKeyOf), computed once per request. */
export function clientKey (request: { readonly ip: string }): string {
  const memo = request as unknown as Record<symbol, string | null | undefined>
  let key = memo[kClientKey]
  if (key == null) {
    key = clientKeyOf(request.ip)
    memo[kClientKey] = key
  }
  return key
}
