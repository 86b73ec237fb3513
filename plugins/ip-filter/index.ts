/**
 * portcullis-ip-filter: gateway-wide and per-route IP allow/deny lists (IPv4, IPv6, CIDR; an
 * IPv4-mapped IPv6 client counts as IPv4) and a per-route allow list of request body media types.
 *
 * Hook: one global `onRequest` hook (`ipFilterOnRequest`), so it runs before any route-level hook
 * (authentication included); needs no other plugin, and the routes it filters registered after it.
 * It does no work unless a gateway-wide list is set or some route carries a filter.
 * Config keys (read in `onRoute`, compiled to node:net BlockLists there): `config.ipFilter`
 * (`{ allow?, deny? }`) and `config.allowedContentTypes` (`string[]`); a route without them is
 * not filtered beyond the gateway-wide lists.
 * The client address is `request.ip`, which honours x-forwarded-for only from TRUST_PROXY peers.
 * Errors: GW_IP_FORBIDDEN (403), GW_REQUEST_UNSUPPORTED_MEDIA_TYPE (415),
 * GW_IP_FILTER_CONFIG_INVALID (startup: options or route config).
 */
import { BlockList } from 'node:net'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { normalizeIp } from '../../lib/client-ip.js'
import { IpForbiddenError, UnsupportedMediaTypeError } from '../../lib/errors.js'
import {
  AllowedContentTypesSchema,
  IpFilterRouteConfigSchema,
  invalidIpFilter,
  ipFilterOptions,
  ipListProblems,
  type IpEntry,
  type IpFilterPluginOptions,
  type IpFilterRouteConfig
} from './schema.js'
import { schemaProblems } from '../../lib/validate.js'
import { routeConfigWith } from '../../lib/route-config.js'
import { routeName } from '../../lib/route-hooks.js'

export { clientIp, clientKey, clientKeyOf, normalizeIp, INVALID_CLIENT_KEY } from '../../lib/client-ip.js'
export type { IpFilterPluginOptions, IpFilterRouteConfig } from './schema.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Per-route IP lists, in addition to the gateway-wide ones (portcullis-ip-filter). */
    ipFilter?: IpFilterRouteConfig
    /** Media types a request body may have on this route; others get 415 (portcullis-ip-filter). */
    allowedContentTypes?: string[]
  }
}

/** Precomputed filter of one route, stored on the route's config under a private key. */
interface RouteFilter {
  readonly lists: IpLists | undefined
  readonly contentTypes: ReadonlySet<string> | undefined
}

interface IpLists {
  readonly allow: BlockList | undefined
  readonly deny: BlockList | undefined
}

const kRouteFilter = Symbol('portcullis.ipFilter.route')

function blockList (entries: readonly IpEntry[]): BlockList | undefined {
  if (entries.length === 0) return undefined
  const list = new BlockList()
  for (const e of entries) list.addSubnet(e.address, e.prefix, e.family)
  return list
}

function compileLists (where: string, allow: readonly string[], deny: readonly string[]): IpLists | undefined {
  const problems: string[] = []
  const a = ipListProblems(`${where}allow`, allow, problems)
  const d = ipListProblems(`${where}deny`, deny, problems)
  if (problems.length > 0) throw invalidIpFilter(problems)
  if (a.length === 0 && d.length === 0) return undefined
  return Object.freeze({ allow: blockList(a), deny: blockList(d) })
}

/** True when `ip` (normalised; undefined = not an address) must be refused by `lists`. */
function refused (lists: IpLists, ip: string | undefined): boolean {
  // An unparseable client address can match neither list: refuse it (fail closed).
  if (ip === undefined) return true
  const family = ip.includes(':') ? 'ipv6' : 'ipv4'
  if (lists.deny !== undefined && lists.deny.check(ip, family)) return true
  return lists.allow !== undefined && !lists.allow.check(ip, family)
}

function hasBody (request: FastifyRequest): boolean {
  const h = request.headers
  if (h['transfer-encoding'] !== undefined) return true
  const length = h['content-length']
  return length !== undefined && length !== '0'
}

function mediaType (header: string | undefined): string {
  if (header === undefined) return ''
  const semi = header.indexOf(';')
  return (semi === -1 ? header : header.slice(0, semi)).trim().toLowerCase()
}

async function gatewayIpFilter (fastify: FastifyInstance, rawOptions: IpFilterPluginOptions): Promise<void> {
  const options = ipFilterOptions(rawOptions)
  const gateway = compileLists('', options.allow, options.deny)
  let anyRouteFilter = false

  fastify.addHook('onRoute', function ipFilterOnRoute (routeOptions) {
    const config = routeOptions.config
    if (config === undefined || (config.ipFilter === undefined && config.allowedContentTypes === undefined)) return
    const where = routeName(routeOptions)
    const problems: string[] = []
    if (config.ipFilter !== undefined) problems.push(...schemaProblems(IpFilterRouteConfigSchema, config.ipFilter, 'config.ipFilter'))
    if (config.allowedContentTypes !== undefined) {
      problems.push(...schemaProblems(AllowedContentTypesSchema, config.allowedContentTypes, 'config.allowedContentTypes'))
    }
    if (problems.length > 0) throw invalidIpFilter([`${where}: ${problems.join('; ')}`])
    const lists = config.ipFilter === undefined
      ? undefined
      : compileLists(`${where}: config.ipFilter.`, config.ipFilter.allow ?? [], config.ipFilter.deny ?? [])
    const contentTypes = config.allowedContentTypes === undefined
      ? undefined
      : new Set(config.allowedContentTypes.map((t) => t.toLowerCase()))
    if (lists === undefined && contentTypes === undefined) return
    const filter: RouteFilter = Object.freeze({ lists, contentTypes })
    // A new config object (one hidden class for all routes); the caller's options stay untouched.
    routeOptions.config = routeConfigWith(config, { [kRouteFilter]: filter })
    anyRouteFilter = true
  })

  fastify.addHook('onRequest', function ipFilterOnRequest (request, _reply, done) {
    if (gateway !== undefined || anyRouteFilter) filterRequest(request)
    done()
  })

  function filterRequest (request: FastifyRequest): void {
    const ip = normalizeIp(request.ip)
    if (gateway !== undefined && refused(gateway, ip)) {
      request.log.debug({ ip: request.ip }, 'client address refused by the gateway IP lists')
      throw new IpForbiddenError()
    }
    if (!anyRouteFilter) return
    const filter = (request.routeOptions.config as unknown as Record<symbol, RouteFilter | undefined>)[kRouteFilter]
    if (filter === undefined) return
    if (filter.lists !== undefined && refused(filter.lists, ip)) {
      request.log.debug({ ip: request.ip }, 'client address refused by the route IP lists')
      throw new IpForbiddenError()
    }
    if (filter.contentTypes !== undefined && hasBody(request) && !filter.contentTypes.has(mediaType(request.headers['content-type']))) {
      request.log.debug('request body media type not allowed on this route')
      throw new UnsupportedMediaTypeError()
    }
  }
}

/**
 * IP allow/deny lists and per-route media-type allow list; register it before the routes:
 * `app.register(ipFilterPlugin, { allow: config.inspect.ipAllow, deny: config.inspect.ipDeny })`.
 */
export const ipFilterPlugin = fp(gatewayIpFilter, {
  name: 'portcullis-ip-filter',
  fastify: '5.x',
  dependencies: []
})
export default ipFilterPlugin
