/**
 * Plain HTTP sent to the TLS listener (`curl http://` against an https port) gets a 400 in the
 * gateway's body saying to use https, as nginx answers "The plain HTTP request was sent to HTTPS
 * port", instead of a connection closed without a word.
 *
 * OpenSSL recognises an HTTP request line as the first record (`ERR_SSL_HTTP_REQUEST`); the
 * answer is written in clear on the TCP socket under the TLS socket, then the connection closes.
 * Costs nothing on the handshake path: it runs only on that TLS error.
 */
import type { Socket } from 'node:net'
import type { Server as TlsServer, TLSSocket } from 'node:tls'
import type { FastifyBaseLogger } from 'fastify'
import { rawResponse } from '../lib/errors.js'

const PLAIN_HTTP = rawResponse('GW_REQUEST_TLS_REQUIRED')

/** Installs the 'tlsClientError' listener on a TLS (https or http2 secure) server. */
export function answerPlainHttpOnTls (server: unknown, log: FastifyBaseLogger): void {
  (server as TlsServer).on('tlsClientError', function tlsPlainHttp (err: Error & { code?: string }, socket: TLSSocket) {
    if (err.code !== 'ERR_SSL_HTTP_REQUEST') return
    log.debug({ peer: socket.remoteAddress }, 'plain HTTP on the TLS port')
    // The TCP socket the TLS socket wraps (Node's TLSSocket keeps it as `_parent`; there is no
    // public accessor). Without it the connection only closes, as before.
    const tcp = (socket as TLSSocket & { _parent?: Socket | null })._parent
    if (tcp !== null && tcp !== undefined && tcp.writable) {
      tcp.on('error', () => {})
      tcp.end(PLAIN_HTTP)
    }
  })
}
