/**
 * Options of the IP filter plugin and its route-level config (`config.ipFilter`,
 * `config.allowedContentTypes`), with the validator that checks every address entry.
 */
import { isIP } from 'node:net'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { compileOptions } from '../../lib/validate.js'
import { pluginConfigError } from '../../lib/errors.js'

/** The startup error of the ip-filter plugin (GW_IP_FILTER_CONFIG_INVALID). */
export const invalidIpFilter = pluginConfigError('Invalid IP filter configuration', 'GW_IP_FILTER_CONFIG_INVALID')

/**
 * Rules of an IP list shared with the environment (IP_ALLOW, IP_DENY in src/config.ts check their
 * entries with `parseIpEntry` and these bounds).
 */
export const IP_LIST = Object.freeze({ maxItems: 100_000, entryMaxLength: 64 })

const IpListSchema = Type.Array(Type.String({ minLength: 1, maxLength: IP_LIST.entryMaxLength }), {
  maxItems: IP_LIST.maxItems,
  description: 'IP addresses or CIDR blocks, IPv4 or IPv6 (`192.0.2.1`, `10.0.0.0/8`, `2001:db8::/32`).'
})

export const IpFilterOptionsSchema = Type.Object({
  allow: Type.Array(Type.String({ minLength: 1, maxLength: IP_LIST.entryMaxLength }), {
    default: [],
    maxItems: IP_LIST.maxItems,
    description: 'Gateway-wide allow list (IPs/CIDRs). Non-empty: every other client gets 403. From IP_ALLOW.'
  }),
  deny: Type.Array(Type.String({ minLength: 1, maxLength: IP_LIST.entryMaxLength }), {
    default: [],
    maxItems: IP_LIST.maxItems,
    description: 'Gateway-wide deny list (IPs/CIDRs); wins over the allow list. From IP_DENY.'
  })
}, { additionalProperties: false })

/** Validated options of the `gateway-ip-filter` plugin. */
export type IpFilterOptions = Static<typeof IpFilterOptionsSchema>

/** Options accepted by `register(ipFilterPlugin, …)` (`config.ipFilter` of src/config.ts). */
export interface IpFilterPluginOptions {
  /** Gateway-wide allow list (IPs/CIDRs); non-empty means every other client gets 403. */
  readonly allow?: readonly string[]
  /** Gateway-wide deny list (IPs/CIDRs); wins over the allow list. */
  readonly deny?: readonly string[]
}

export const IpFilterRouteConfigSchema = Type.Object({
  allow: Type.Optional(IpListSchema),
  deny: Type.Optional(IpListSchema)
}, {
  additionalProperties: false,
  description: 'Per-route IP lists, checked in addition to the gateway-wide ones.'
})
/** Route `config.ipFilter`. */
export type IpFilterRouteConfig = Static<typeof IpFilterRouteConfigSchema>

/** A media type as sent in `content-type` (no parameters), compared case-insensitively. */
export const AllowedContentTypesSchema = Type.Array(
  Type.String({ minLength: 3, maxLength: 255, pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+/[A-Za-z0-9!#$%&\'*+.^_`|~-]+$', patternMessage: 'must be a media type such as "application/json", without parameters' }),
  { minItems: 1, uniqueItems: true, description: 'Media types a request body may have on this route (others: 415).' }
)

/** One parsed list entry. */
export interface IpEntry {
  readonly address: string
  readonly prefix: number
  readonly family: 'ipv4' | 'ipv6'
}

const MAPPED_PREFIX = '::ffff:'

/**
 * Parses `ip` or `ip/prefix`; IPv4-mapped IPv6 entries become IPv4 (prefix minus 96) so that they
 * match IPv4 clients. Returns a problem text instead when the entry is invalid.
 */
export function parseIpEntry (entry: string): IpEntry | string {
  const slash = entry.indexOf('/')
  let address = slash === -1 ? entry : entry.slice(0, slash)
  const bitsText = slash === -1 ? undefined : entry.slice(slash + 1)
  const version = isIP(address)
  if (version === 0) return `"${entry}" is not an IP address or CIDR`
  let max = version === 4 ? 32 : 128
  let prefix = max
  if (bitsText !== undefined) {
    if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > max) return `"${entry}" has an invalid prefix length`
    prefix = Number(bitsText)
  }
  let family: 'ipv4' | 'ipv6' = version === 4 ? 'ipv4' : 'ipv6'
  const lower = address.toLowerCase()
  if (family === 'ipv6' && lower.startsWith(MAPPED_PREFIX) && isIP(lower.slice(MAPPED_PREFIX.length)) === 4) {
    if (prefix < 96) return `"${entry}" mixes an IPv4-mapped address with a prefix shorter than 96`
    address = lower.slice(MAPPED_PREFIX.length)
    family = 'ipv4'
    max = 32
    prefix -= 96
  }
  return { address, prefix, family }
}

/** Validates a list; pushes one problem per bad entry, prefixed with `where`. */
export function ipListProblems (where: string, entries: readonly string[], problems: string[]): IpEntry[] {
  const out: IpEntry[] = []
  entries.forEach((e, i) => {
    const parsed = parseIpEntry(e)
    if (typeof parsed === 'string') problems.push(`${where}[${i}]: ${parsed}`)
    else out.push(parsed)
  })
  return out
}

/** Validates and freezes plugin options (TypeBox schema plus every list entry). */
export function ipFilterOptions (input: unknown): Readonly<IpFilterOptions> {
  return compileOptions(IpFilterOptionsSchema as TSchema, input ?? {}, invalidIpFilter, (o: IpFilterOptions, problems) => {
    ipListProblems('allow', o.allow, problems)
    ipListProblems('deny', o.deny, problems)
  }) as Readonly<IpFilterOptions>
}
