/**
 * The `mtls` strategy: the client certificate verified by the TLS layer names the consumer.
 *
 * The server asks for a certificate (`requestCert`) without refusing the handshake
 * (`rejectUnauthorized: false`), so a connection without one still reaches routes that do not
 * need it, and a route that does answers 401 with the gateway's body instead of a TLS alert. The
 * verdict is the socket's: `authorized` (chain to the client CA, dates, the CRL) and
 * `authorizationError`. HTTP/2 requests read the session's TLS socket (the compat socket proxies it).
 * A certificate carries no scopes; the consumer id is one field of the certificate
 * (`mtlsConsumerField`), which must fit the consumer-name pattern.
 */
import type { TLSSocket } from 'node:tls'
import type { FastifyRequest } from 'fastify'
import type { Consumer } from '../../lib/consumer.js'
import { AuthFailure } from './jwt.js'
import { CONSUMER_PATTERN, type MtlsConsumerField } from './schema.js'

const CONSUMER = new RegExp(CONSUMER_PATTERN)
const NO_SCOPES: readonly string[] = Object.freeze([])

/** The subjectAltName prefix (as Node's `subjectaltname` writes it) of each SAN field. */
const SAN_PREFIX: Readonly<Record<Exclude<MtlsConsumerField, 'subject.CN'>, string>> = {
  'san.dns': 'DNS:',
  'san.uri': 'URI:',
  'san.email': 'email:'
}

/**
 * The entries of Node's `subjectaltname` string (`DNS:a, URI:b`); values with special characters
 * come JSON-quoted (`DNS:"a,b"`), which are unquoted here.
 */
function sanEntries (san: string): string[] {
  const out: string[] = []
  let i = 0
  while (i < san.length) {
    const colon = san.indexOf(':', i)
    if (colon === -1) break
    const name = san.slice(i, colon + 1)
    let value: string
    let end: number
    if (san[colon + 1] === '"') {
      let j = colon + 2
      while (j < san.length && san[j] !== '"') j += san[j] === '\\' ? 2 : 1
      try {
        value = JSON.parse(san.slice(colon + 1, j + 1)) as string
      } catch {
        return out
      }
      end = j + 1
    } else {
      end = san.indexOf(', ', colon)
      if (end === -1) end = san.length
      value = san.slice(colon + 1, end)
    }
    out.push(name + value)
    i = san.startsWith(', ', end) ? end + 2 : end
  }
  return out
}

/** The consumer id the certificate's `field` names; undefined when it has none or an ambiguous one. */
export function certificateConsumerId (cert: { subject?: Record<string, unknown> | null, subjectaltname?: string }, field: MtlsConsumerField): string | undefined {
  if (field === 'subject.CN') {
    const cn = cert.subject?.CN
    return typeof cn === 'string' ? cn : undefined
  }
  const prefix = SAN_PREFIX[field]
  for (const entry of sanEntries(cert.subjectaltname ?? '')) {
    if (entry.startsWith(prefix)) return entry.slice(prefix.length)
  }
  return undefined
}

/**
 * The TLS socket under a request, or undefined on plain HTTP: the connection's socket, and for an
 * HTTP/2 stream its session's (one socket for every stream; `request.raw.socket` is a proxy made
 * per stream).
 */
function tlsSocketOf (request: FastifyRequest): TLSSocket | undefined {
  const raw = request.raw as { stream?: { session?: { socket?: unknown } | undefined }, socket?: unknown }
  const socket = (raw.stream?.session?.socket ?? raw.socket) as Partial<TLSSocket> | null | undefined
  if (socket === null || socket === undefined) return undefined
  try {
    return typeof socket.getPeerCertificate === 'function' ? socket as TLSSocket : undefined
  } catch {
    return undefined
  }
}

/**
 * What a connection's certificate says, read once per TLS socket: the certificate cannot change
 * on a connection (TLS 1.3 has no renegotiation, and the listener refuses TLS 1.2 renegotiation:
 * SSL_OP_NO_RENEGOTIATION in src/server-tls.ts), and `getPeerCertificate()` builds a new object of
 * every field on each call. Kept per consumer field (one gateway may embed apps reading others).
 */
type CertVerdict = { readonly kind: 'none' } | { readonly kind: 'unverified', readonly error: string } | { readonly kind: 'consumer', readonly consumer: Consumer } | { readonly kind: 'bad-consumer' }
const verdicts = new WeakMap<TLSSocket, Map<MtlsConsumerField, CertVerdict>>()

function readVerdict (socket: TLSSocket, field: MtlsConsumerField): CertVerdict {
  let cert: ReturnType<TLSSocket['getPeerCertificate']>
  let authorized: boolean
  let error: unknown
  try {
    cert = socket.getPeerCertificate()
    authorized = socket.authorized
    error = socket.authorizationError
  } catch {
    return { kind: 'none' }
  }
  if (cert === null || typeof cert !== 'object' || Object.keys(cert).length === 0) return { kind: 'none' }
  if (authorized !== true) return { kind: 'unverified', error: String(error) }
  const id = certificateConsumerId(cert as unknown as { subject?: Record<string, unknown>, subjectaltname?: string }, field)
  if (id === undefined || !CONSUMER.test(id)) return { kind: 'bad-consumer' }
  return { kind: 'consumer', consumer: Object.freeze({ id, strategy: 'mtls' as const, scopes: NO_SCOPES }) }
}

/**
 * The client-certificate credential: undefined when none was presented; a failure when one was
 * presented but not verified (unknown CA, expired, revoked) or names no valid consumer.
 */
export function mtlsCredential (request: FastifyRequest, field: MtlsConsumerField): Consumer | AuthFailure | undefined {
  const socket = tlsSocketOf(request)
  if (socket === undefined) return undefined
  let byField = verdicts.get(socket)
  let verdict = byField?.get(field)
  if (verdict === undefined) {
    // Requests arrive after the handshake: its verdict is final for the connection.
    verdict = readVerdict(socket, field)
    if (byField === undefined) verdicts.set(socket, byField = new Map())
    byField.set(field, verdict)
  }
  switch (verdict.kind) {
    case 'none': return undefined
    case 'unverified':
      request.log.debug({ tlsError: verdict.error }, 'client certificate not verified')
      return new AuthFailure('invalid_client_certificate', false)
    case 'bad-consumer': return new AuthFailure('invalid_certificate_consumer', false)
    case 'consumer': return verdict.consumer
  }
}
