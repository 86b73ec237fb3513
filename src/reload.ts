/**
 * Configuration reload without a restart (SIGHUP, or `POST /reload` on the admin listener).
 *
 * One listening server for the life of the process; each configuration is a separate Fastify
 * app (a generation). The server's request events (`request`, `checkContinue`,
 * `checkExpectation`, `upgrade`) are forwarded to the current generation, counted per
 * generation. A reload builds and readies the next generation completely (the same loader and
 * checks as at startup) before anything changes: a bad configuration leaves the running one
 * untouched. Then new requests go to the new generation; the previous one finishes its requests
 * and WebSocket connections and is closed once the last has ended.
 *
 * Per-server settings (port, timeouts, client-error answers, PROXY protocol, TLS on plain HTTP)
 * belong to the server and do not change; its TLS credentials do (`setSecureContext`: the
 * certificate and key, the client CA bundle and CRL; src/server-tls.ts).
 */
import { EventEmitter } from 'node:events'
import type { Server } from 'node:http'
import type { FastifyInstance } from 'fastify'

/** The server events that carry a request (or a WebSocket handshake) to an app. */
const REQUEST_EVENTS = ['request', 'checkContinue', 'checkExpectation', 'upgrade'] as const
type RequestEvent = typeof REQUEST_EVENTS[number]
type Listener = (...args: unknown[]) => void

interface Generation {
  readonly app: FastifyInstance
  /** Holds the app's listeners for REQUEST_EVENTS (its private server, or the listening one's). */
  readonly events: EventEmitter
  /** Whether the app was created on the listening server (the first configuration). */
  readonly ownsServer: boolean
  requests: number
  upgrades: number
  retired: boolean
  closed: Promise<void> | undefined
  idle: Array<() => void>
}

/** The outcome of one reload: whether the new configuration serves, and why not. */
export interface ReloadOutcome {
  readonly ok: boolean
  readonly problems: readonly string[]
}

/**
 * Closes the first app (created on the listening server) without closing that server, which
 * the later generations still use.
 */
async function closeKeepingServer (app: FastifyInstance, server: Server): Promise<void> {
  const s = server as Server & { close: Server['close'], closeIdleConnections: Server['closeIdleConnections'] }
  s.close = function keepListening (this: Server, cb?: (err?: Error) => void) {
    if (cb !== undefined) process.nextTick(cb)
    return this
  } as Server['close']
  s.closeIdleConnections = () => {}
  try {
    await app.close()
  } finally {
    delete (s as Partial<typeof s>).close
    delete (s as Partial<typeof s>).closeIdleConnections
  }
}

/** Forwards the listening server's request events to the current generation. */
export class GenerationSwitch {
  readonly #server: Server
  #current: Generation
  readonly #live = new Set<Generation>()
  readonly #dispatchers = new Map<RequestEvent, Listener>()
  /** Generations started (the first is 1). */
  generation = 1

  /** Takes over `server`'s request listeners (those of `app`, created on it). */
  constructor (server: Server, app: FastifyInstance) {
    this.#server = server
    const events = new EventEmitter()
    for (const event of REQUEST_EVENTS) {
      for (const listener of server.listeners(event)) events.on(event, listener as Listener)
      server.removeAllListeners(event)
    }
    this.#current = this.#generation(app, events, true)
    this.#sync()
  }

  get app (): FastifyInstance {
    return this.#current.app
  }

  /** Whether requests go to another app than the first. */
  get switched (): boolean {
    return !this.#current.ownsServer || this.#live.size > 1
  }

  #generation (app: FastifyInstance, events: EventEmitter, ownsServer: boolean): Generation {
    const g: Generation = { app, events, ownsServer, requests: 0, upgrades: 0, retired: false, closed: undefined, idle: [] }
    this.#live.add(g)
    return g
  }

  /** One dispatcher per event the current app listens to (Node's defaults apply to the others). */
  #sync (): void {
    for (const event of REQUEST_EVENTS) {
      const wanted = this.#current.events.listenerCount(event) > 0
      const installed = this.#dispatchers.get(event)
      if (wanted && installed === undefined) {
        const dispatcher = this.#dispatcher(event)
        this.#dispatchers.set(event, dispatcher)
        this.#server.on(event, dispatcher)
      } else if (!wanted && installed !== undefined) {
        this.#dispatchers.delete(event)
        this.#server.removeListener(event, installed)
      }
    }
  }

  #dispatcher (event: RequestEvent): Listener {
    const upgrade = event === 'upgrade'
    return (req: unknown, target: unknown, head?: unknown) => {
      const g = this.#current
      if (upgrade) g.upgrades++
      else g.requests++
      // The response ('close' once answered or aborted), or the upgraded socket (once closed).
      ;(target as EventEmitter).once('close', () => {
        if (upgrade) g.upgrades--
        else g.requests--
        this.#settled(g)
      })
      g.events.emit(event, req, target, head)
    }
  }

  #settled (g: Generation): void {
    if (g.requests === 0) {
      for (const fn of g.idle.splice(0)) fn()
      if (g.retired && g.upgrades === 0) this.#close(g).catch(() => {})
    }
  }

  async #close (g: Generation): Promise<void> {
    g.closed ??= (g.ownsServer ? closeKeepingServer(g.app, this.#server) : g.app.close()).catch((err: unknown) => {
      g.app.log.warn({ err }, 'closing a previous configuration failed')
    }).finally(() => { this.#live.delete(g) })
    await g.closed
  }

  /** New requests go to `app` (built with `reloadVersion`); the previous app closes once drained. */
  swap (app: FastifyInstance): void {
    const previous = this.#current
    this.#current = this.#generation(app, app.server, false)
    this.#sync()
    previous.retired = true
    this.#settled(previous)
  }

  /**
   * Shutdown after a reload: stops accepting, lets every generation finish its requests, then
   * closes each (its WebSockets get 1001, as a single app's close does).
   */
  async close (): Promise<void> {
    const server = this.#server
    const stopped = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    server.closeIdleConnections()
    await Promise.all([...this.#live].map(async (g) => {
      if (g.requests > 0) await new Promise<void>((resolve) => { g.idle.push(resolve) })
      await this.#close(g)
    }))
    await stopped
  }
}
