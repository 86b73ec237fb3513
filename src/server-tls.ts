/**
 * The listening server's TLS credentials: the certificate and key (TLS_CERT_FILE, TLS_KEY_FILE),
 * and the client CA bundle and revocation lists (TLS_CLIENT_CA_FILE, TLS_CLIENT_CRL_FILE) that
 * verify client certificates (the `mtls` strategy).
 *
 * The secure context is built from the files alone (`readServerSecureContext`): at startup, at
 * every configuration reload (SIGHUP, admin POST /reload), and, for the client CA bundle and the
 * CRL, whenever their folder changes (`ServerTlsContext.watch`: the folder, not the file, so that
 * an editor's rename and the `..data` symlink swap of a Kubernetes Secret or ConfigMap volume are
 * seen). It is put in use with `server.setSecureContext()`; what belongs to the server and not to
 * the context (requestCert, rejectUnauthorized, ALPN, timeouts) stays as it is.
 *
 * A file that cannot be read or parsed keeps the context in use and says why in one warn line:
 * never a context without the CRL (no fail-open), never a crash.
 *
 * Only new TLS connections get a new context. A connection's certificate is verified once, in its
 * handshake: an open keep-alive connection, HTTP/2 session or WebSocket keeps the verdict it had,
 * as with nginx (ssl_crl) and Envoy (crl of the validation context). A new context comes with new
 * session-ticket keys and an empty session cache, so no earlier session is resumed past a new CRL.
 */
import { constants, createHash } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { dirname } from 'node:path'
import { createSecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls'
import type { FastifyBaseLogger } from 'fastify'
import { readText } from '../lib/files.js'

/** The files of the server's TLS (the `tls` of GatewayConfig). */
export interface ServerTlsFiles {
  readonly certFile: string
  readonly keyFile: string
  readonly clientCaFile?: string | undefined
  readonly clientCrlFile?: string | undefined
}

/** A problem of one variable's file. */
export interface TlsFileProblem {
  readonly variable: 'TLS_CLIENT_CA_FILE' | 'TLS_CLIENT_CRL_FILE'
  readonly message: string
}

/** The client CA bundle and the CRLs, as the secure context takes them. */
export interface ClientCa {
  readonly ca: string
  /** One PEM block per CRL: Node reads a single CRL from each string it is given. */
  readonly crl: readonly string[] | undefined
}

const CRL_BLOCK = /-----BEGIN X509 CRL-----[\s\S]*?-----END X509 CRL-----/g

/** Quiet time after the last change in a watched folder before the files are read. */
const RELOAD_DELAY_MS = 200

/** The minimum protocol version of the gateway's TLS listener. */
export const TLS_MIN_VERSION = 'TLSv1.2'

/**
 * Reads and checks TLS_CLIENT_CA_FILE (PEM certificates) and TLS_CLIENT_CRL_FILE (PEM CRLs, one
 * or more, e.g. one per CA of the bundle): the contents, or every problem.
 */
export function readClientCa (caFile: string, crlFile: string | undefined): ClientCa | TlsFileProblem[] {
  let ca: string
  try {
    ca = readText(caFile)
  } catch {
    return [{ variable: 'TLS_CLIENT_CA_FILE', message: 'cannot be read' }]
  }
  if (!ca.includes('-----BEGIN CERTIFICATE-----')) return [{ variable: 'TLS_CLIENT_CA_FILE', message: 'no PEM certificate in the file' }]
  try {
    createSecureContext({ ca })
  } catch {
    return [{ variable: 'TLS_CLIENT_CA_FILE', message: 'not a usable PEM certificate bundle' }]
  }
  if (crlFile === undefined) return { ca, crl: undefined }
  let text: string
  try {
    text = readText(crlFile)
  } catch {
    return [{ variable: 'TLS_CLIENT_CRL_FILE', message: 'cannot be read' }]
  }
  const crl = text.match(CRL_BLOCK)
  if (crl === null) return [{ variable: 'TLS_CLIENT_CRL_FILE', message: 'no PEM CRL (-----BEGIN X509 CRL-----) in the file' }]
  try {
    createSecureContext({ ca, crl })
  } catch {
    return [{ variable: 'TLS_CLIENT_CRL_FILE', message: 'not a usable PEM certificate revocation list' }]
  }
  return { ca, crl }
}

/** The secure context of the listener, and a digest of its client CA and CRLs. */
export interface ServerSecureContext {
  readonly cert: string
  readonly key: string
  readonly options: SecureContextOptions
  readonly clientCaDigest: string
}

function digestOf (clientCa: ClientCa | undefined): string {
  if (clientCa === undefined) return ''
  return createHash('sha256').update(clientCa.ca).update('\0').update((clientCa.crl ?? []).join('\n')).digest('hex')
}

function contextOptions (cert: string, key: string, clientCa: ClientCa | undefined): SecureContextOptions {
  return {
    cert,
    key,
    minVersion: TLS_MIN_VERSION,
    // No TLS 1.2 renegotiation (as nginx): a client-initiated one is a CPU lever (CVE-2011-1473),
    // and a connection's client certificate stays the one its handshake verified.
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    ...(clientCa !== undefined ? { ca: clientCa.ca } : {}),
    ...(clientCa?.crl !== undefined ? { crl: [...clientCa.crl] } : {})
  }
}

function problemText (problems: readonly TlsFileProblem[]): string {
  return problems.map((p) => `${p.variable}: ${p.message}`).join('; ')
}

/**
 * Reads every TLS file and builds the listener's secure context from them (checked: a context is
 * created). Throws an Error naming the variables when a file is missing or unusable.
 */
export function readServerSecureContext (files: ServerTlsFiles): ServerSecureContext {
  let cert: string
  let key: string
  try {
    cert = readText(files.certFile)
    key = readText(files.keyFile)
  } catch (err) {
    throw new Error(`TLS_CERT_FILE/TLS_KEY_FILE: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  let clientCa: ClientCa | undefined
  if (files.clientCaFile !== undefined) {
    const read = readClientCa(files.clientCaFile, files.clientCrlFile)
    if (Array.isArray(read)) throw new Error(problemText(read))
    clientCa = read
  }
  const options = contextOptions(cert, key, clientCa)
  try {
    createSecureContext(options)
  } catch (err) {
    throw new Error(`TLS_CERT_FILE/TLS_KEY_FILE: ${(err as Error).message}`)
  }
  return { cert, key, options, clientCaDigest: digestOf(clientCa) }
}

/** What a client CA reload did. */
export type ClientCaReloadStatus = 'loaded' | 'unchanged' | 'failed'

/** The secure context of one listening TLS server, and its reloads. */
export class ServerTlsContext {
  readonly #server: TlsServer
  readonly #files: ServerTlsFiles
  readonly #log: () => FastifyBaseLogger
  #cert: string
  #key: string
  #digest: string
  #timer: NodeJS.Timeout | undefined
  readonly #watchers: FSWatcher[] = []

  /** `context` is put in use at once (it was read from `files`); `log` gives the current logger. */
  constructor (server: TlsServer, files: ServerTlsFiles, context: ServerSecureContext, log: () => FastifyBaseLogger) {
    this.#server = server
    this.#files = files
    this.#log = log
    this.#cert = context.cert
    this.#key = context.key
    this.#digest = context.clientCaDigest
    server.setSecureContext(context.options)
  }

  /**
   * Puts a context in use that a configuration reload read afresh (every file). The reload read
   * them a while ago: a client CA or CRL changed since (and perhaps already applied by the watch)
   * is read once more, so an older file never replaces a newer one.
   */
  use (context: ServerSecureContext): void {
    this.#server.setSecureContext(context.options)
    this.#cert = context.cert
    this.#key = context.key
    this.#digest = context.clientCaDigest
    this.reloadClientCa()
  }

  /**
   * Re-reads the client CA bundle and the CRL (the certificate and key in use stay); new TLS
   * connections are verified against them. A file that cannot be read or parsed keeps the ones
   * in use, with a warn line naming the problems.
   */
  reloadClientCa (): ClientCaReloadStatus {
    const { clientCaFile, clientCrlFile } = this.#files
    if (clientCaFile === undefined) return 'unchanged'
    const read = readClientCa(clientCaFile, clientCrlFile)
    if (Array.isArray(read)) {
      this.#log().warn({ problems: read.map((p) => `${p.variable}: ${p.message}`), caFile: clientCaFile, crlFile: clientCrlFile }, 'client CA and CRL not reloaded; the ones in use stay')
      return 'failed'
    }
    const digest = digestOf(read)
    if (digest === this.#digest) return 'unchanged'
    const options = contextOptions(this.#cert, this.#key, read)
    try {
      this.#server.setSecureContext(options)
    } catch (err) {
      this.#log().warn({ problems: [(err as Error).message], caFile: clientCaFile, crlFile: clientCrlFile }, 'client CA and CRL not reloaded; the ones in use stay')
      return 'failed'
    }
    this.#digest = digest
    this.#log().info({ caFile: clientCaFile, crlFile: clientCrlFile, crls: read.crl?.length ?? 0 }, 'client CA and CRL reloaded; new TLS connections are verified against them')
    return 'loaded'
  }

  /** Re-reads the client CA bundle and CRL a moment after anything changes in their folders. */
  watch (): void {
    const { clientCaFile, clientCrlFile } = this.#files
    if (clientCaFile === undefined) return
    const schedule = (): void => {
      if (this.#timer !== undefined) clearTimeout(this.#timer)
      this.#timer = setTimeout(() => {
        this.#timer = undefined
        this.reloadClientCa()
      }, RELOAD_DELAY_MS)
      this.#timer.unref()
    }
    const folders = new Set([dirname(clientCaFile), ...(clientCrlFile !== undefined ? [dirname(clientCrlFile)] : [])])
    for (const folder of folders) {
      try {
        const watcher = watch(folder, { persistent: false }, schedule)
        watcher.on('error', (err: NodeJS.ErrnoException) => {
          this.#log().warn({ folder, code: err.code }, 'client CA and CRL folder no longer watched (reload with SIGHUP)')
          watcher.close()
        })
        this.#watchers.push(watcher)
      } catch (err) {
        this.#log().warn({ folder, code: (err as NodeJS.ErrnoException).code }, 'client CA and CRL folder not watched (reload with SIGHUP)')
      }
    }
  }

  close (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    for (const w of this.#watchers.splice(0)) w.close()
  }
}
