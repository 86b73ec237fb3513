/**
 * PROXY protocol (HAProxy, versions 1 and 2) on the gateway's listener, so the client address
 * survives an L4 balancer (nginx `proxy_protocol on`, HAProxy `send-proxy`, cloud balancers).
 *
 * - Only peers in TRUST_PROXY may announce an address; each of their connections must open with
 *   a PROXY header (as `accept-proxy` in HAProxy), or it is refused: 400 in the gateway's body
 *   when the first bytes are plain text, otherwise closed.
 * - Other peers are handed to the HTTP(S) server untouched; a PROXY header from one of them is
 *   an invalid request line (400), so no one outside TRUST_PROXY can choose their address.
 * - The header is read once per connection, bounded in size (v1: 107 bytes, v2: 16 + 1024) and
 *   time; what follows it is handed on with the socket. With TLS the header precedes the
 *   handshake.
 * - The announced source becomes the socket's `remoteAddress` / `remotePort` / `remoteFamily`,
 *   so `request.ip`, the per-IP limit, `keyBy: 'ip'`, IP allow/deny, the access log and the
 *   upstream `x-forwarded-for` all see the client. `LOCAL` (v2) and `UNKNOWN` (v1) headers keep
 *   the balancer's own address (its health checks).
 */
import { BlockList, isIPv4, isIPv6, type Server as NetServer, type Socket } from 'node:net'
import { Server as TlsServer, type TLSSocket } from 'node:tls'
import type { FastifyBaseLogger } from 'fastify'
import { rawResponse } from '../lib/errors.js'
import { normalizeIp } from '../lib/client-ip.js'
import { parseIpEntry } from '../plugins/ip-filter/schema.js'

/** The source address a PROXY header announces. */
export interface ProxySource {
  readonly address: string
  readonly port: number
  readonly family: 'IPv4' | 'IPv6'
}

export type ProxyHeader =
  /** More bytes are needed to decide. */
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid', readonly reason: string }
  /** A complete header of `length` bytes; no `source` for LOCAL / UNKNOWN / non-IP families. */
  | { readonly kind: 'header', readonly length: number, readonly source?: ProxySource }

const V1_PREFIX = Buffer.from('PROXY ', 'latin1')
const V1_MAX = 107
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
const V2_FIXED = 16
/** Largest v2 address block plus TLVs accepted (cloud balancers send well under 300 bytes). */
export const V2_MAX_PAYLOAD = 1024
const PORT = /^(?:0|[1-9][0-9]{0,4})$/

const INCOMPLETE: ProxyHeader = Object.freeze({ kind: 'incomplete' })

function invalid (reason: string): ProxyHeader {
  return { kind: 'invalid', reason }
}

/** True while `buf` could still be the start of `prefix`. */
function startsLike (buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length)
  return buf.subarray(0, n).equals(prefix.subarray(0, n))
}

function parseV1 (buf: Buffer): ProxyHeader {
  const end = buf.indexOf('\r\n', 0, 'latin1')
  if (end === -1) return buf.length >= V1_MAX ? invalid('v1 header longer than 107 bytes') : INCOMPLETE
  if (end + 2 > V1_MAX) return invalid('v1 header longer than 107 bytes')
  const line = buf.toString('latin1', V1_PREFIX.length, end)
  const parts = line.split(' ')
  if (parts[0] === 'UNKNOWN') return { kind: 'header', length: end + 2 }
  if (parts.length !== 5) return invalid('v1 header needs protocol, two addresses and two ports')
  const [proto, src, dst, sport, dport] = parts as [string, string, string, string, string]
  const check = proto === 'TCP4' ? isIPv4 : proto === 'TCP6' ? isIPv6 : undefined
  if (check === undefined) return invalid('v1 protocol is not TCP4, TCP6 or UNKNOWN')
  if (!check(src) || !check(dst)) return invalid(`v1 addresses are not ${proto === 'TCP4' ? 'IPv4' : 'IPv6'}`)
  if (!PORT.test(sport) || !PORT.test(dport) || Number(sport) > 65535 || Number(dport) > 65535) return invalid('v1 port out of range')
  return { kind: 'header', length: end + 2, source: { address: src, port: Number(sport), family: proto === 'TCP4' ? 'IPv4' : 'IPv6' } }
}

/** The IPv6 address at `at` in canonical text (RFC 5952: longest zero run as `::`); IPv4-mapped as IPv4. */
function ipv6At (buf: Buffer, at: number): string {
  const groups: number[] = []
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(at + 2 * i))
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `${buf[at + 12] as number}.${buf[at + 13] as number}.${buf[at + 14] as number}.${buf[at + 15] as number}`
  }
  let bestStart = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) { bestStart = i; bestLen = j - i }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (bestStart === -1) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`
}

function parseV2 (buf: Buffer): ProxyHeader {
  if (buf.length < V2_FIXED) return INCOMPLETE
  const verCmd = buf[12] as number
  if (verCmd >> 4 !== 2) return invalid('v2 version is not 2')
  const command = verCmd & 0x0f
  if (command > 1) return invalid('v2 command is neither LOCAL nor PROXY')
  const famProto = buf[13] as number
  const family = famProto >> 4
  const transport = famProto & 0x0f
  const len = buf.readUInt16BE(14)
  if (len > V2_MAX_PAYLOAD) return invalid('v2 header longer than allowed')
  if (buf.length < V2_FIXED + len) return INCOMPLETE
  const length = V2_FIXED + len
  if (command === 0) return { kind: 'header', length }
  if (family > 3 || transport > 2) return invalid('v2 unknown address family or transport')
  if (transport === 2) return invalid('v2 datagram transport on a stream listener')
  if (family === 1) {
    if (len < 12) return invalid('v2 INET address block too short')
    const address = `${buf[16] as number}.${buf[17] as number}.${buf[18] as number}.${buf[19] as number}`
    return { kind: 'header', length, source: { address, port: buf.readUInt16BE(24), family: 'IPv4' } }
  }
  if (family === 2) {
    if (len < 36) return invalid('v2 INET6 address block too short')
    const address = ipv6At(buf, 16)
    // An IPv4-mapped source is the IPv4 client.
    return { kind: 'header', length, source: { address, port: buf.readUInt16BE(48), family: isIPv4(address) ? 'IPv4' : 'IPv6' } }
  }
  // UNSPEC or UNIX: no IP address to take; the connection keeps the balancer's.
  return { kind: 'header', length }
}

/**
 * Parses the PROXY header at the start of `buf` (v1 or v2, decided by the first bytes). Strict:
 * anything not exactly as the specification writes it is `invalid`.
 */
export function parseProxyHeader (buf: Buffer): ProxyHeader {
  if (buf.length === 0) return INCOMPLETE
  if (startsLike(buf, V2_SIGNATURE)) return buf.length < V2_SIGNATURE.length ? INCOMPLETE : parseV2(buf)
  if (startsLike(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? INCOMPLETE : parseV1(buf)
  return invalid('no PROXY header')
}

export interface ProxyProtocolOptions {
  /** Peers (IPs / CIDRs, as TRUST_PROXY) whose connections carry a PROXY header. */
  readonly trusted: readonly string[]
  /** Longest wait for the whole header after the connection opens. */
  readonly timeoutMs: number
  readonly log: FastifyBaseLogger
}

const REFUSAL = rawResponse('GW_PROXY_PROTOCOL_INVALID')
const TLS_HANDSHAKE = 0x16

function announce (socket: Socket, source: ProxySource): void {
  Object.defineProperty(socket, 'remoteAddress', { value: source.address, configurable: true })
  Object.defineProperty(socket, 'remotePort', { value: source.port, configurable: true })
  Object.defineProperty(socket, 'remoteFamily', { value: source.family, configurable: true })
}

function trustList (entries: readonly string[]): BlockList {
  const list = new BlockList()
  for (const e of entries) {
    const parsed = parseIpEntry(e)
    if (typeof parsed === 'string') throw new Error(`PROXY protocol: ${parsed}`)
    list.addSubnet(parsed.address, parsed.prefix, parsed.family)
  }
  return list
}

/**
 * Makes `server` (http, https or http2 secure, not yet listening) read a PROXY header on every
 * connection from a trusted peer before the HTTP(S) server sees it.
 */
export function acceptProxyProtocol (server: NetServer, opts: ProxyProtocolOptions): void {
  if (opts.trusted.length === 0) throw new Error('PROXY protocol needs the balancer addresses (TRUST_PROXY)')
  const trusted = trustList(opts.trusted)
  const handlers = server.listeners('connection') as Array<(socket: Socket) => void>
  server.removeAllListeners('connection')
  // TLS: the TLS socket reports the TCP peer; the announced address is copied onto it when
  // the handshake completes, found by the TCP peer's address and port (unique while open).
  const pending = new Map<string, ProxySource>()
  const tls = server instanceof TlsServer
  if (tls) {
    server.prependListener('secureConnection', function proxyProtocolTls (socket: TLSSocket) {
      const source = pending.get(`${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`)
      if (source !== undefined) announce(socket, source)
    })
  }

  function handOn (socket: Socket): void {
    for (const h of handlers) h.call(server, socket)
  }

  server.on('connection', function proxyProtocolConnection (socket: Socket) {
    const peer = socket.remoteAddress
    const normal = peer === undefined ? undefined : normalizeIp(peer)
    if (normal === undefined || !trusted.check(normal, normal.includes(':') ? 'ipv6' : 'ipv4')) {
      handOn(socket)
      return
    }
    const peerKey = `${peer ?? ''}|${socket.remotePort ?? ''}`
    let buf: Buffer = Buffer.alloc(0)
    const timer = setTimeout(() => { refuse('no complete PROXY header in time') }, opts.timeoutMs)
    timer.unref()

    function done (): void {
      clearTimeout(timer)
      socket.removeListener('data', onData)
      socket.removeListener('error', onError)
      socket.removeListener('close', done)
    }
    function refuse (reason: string): void {
      done()
      opts.log.debug({ peer, reason }, 'connection refused: PROXY protocol')
      if (buf.length > 0 && buf[0] !== TLS_HANDSHAKE && socket.writable) socket.end(REFUSAL)
      else socket.destroy()
      socket.on('error', () => {})
    }
    function onError (): void {
      done()
      socket.destroy()
    }
    function onData (chunk: Buffer): void {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      const header = parseProxyHeader(buf)
      if (header.kind === 'incomplete') return
      if (header.kind === 'invalid') {
        refuse(header.reason)
        return
      }
      done()
      socket.pause()
      if (header.source !== undefined) {
        if (tls) {
          const source = header.source
          pending.set(peerKey, source)
          socket.once('close', () => { pending.delete(peerKey) })
        }
        announce(socket, header.source)
      }
      if (buf.length > header.length) socket.unshift(buf.subarray(header.length))
      handOn(socket)
      // The TLS socket now reads through its own handle (fed what was unshifted); a plain HTTP
      // socket needs its stream flowing again.
      if (!tls) socket.resume()
    }
    socket.on('data', onData)
    socket.on('error', onError)
    socket.on('close', done)
  })
}
