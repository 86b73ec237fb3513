#!/usr/bin/env node
/**
 * Process entry (the package's `portcullis` command): environment -> config -> gateway ->
 * listen, and graceful close.
 *
 * On SIGTERM/SIGINT: /readyz turns 503 and responses carry `connection: close`; the listener
 * keeps accepting for DRAIN_DELAY_MS (default 0) so balancers polling /readyz stop sending
 * first; then it stops accepting, idle keep-alive connections close, in-flight requests finish,
 * and the process exits within DRAIN_TIMEOUT_MS more. On SIGHUP: the configuration is reloaded
 * (src/reload.ts), API_KEYS_FILE, the TLS certificate, TLS_CLIENT_CA_FILE and TLS_CLIENT_CRL_FILE
 * included; the client CA bundle and CRL are also re-read when their folder changes (server-tls.ts).
 */
import cluster from 'node:cluster'
import { existsSync, realpathSync } from 'node:fs'
import type { Server } from 'node:http'
import type { Server as TlsServer } from 'node:tls'
import { fileURLToPath } from 'node:url'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import pino from 'pino'
import { buildGateway, DEFAULT_ROUTES_DIR, loggerOptions } from './app.js'
import { isClusterPrimary, runPrimary, WORKER_SERVING } from './cluster.js'
import { DEMO_API_KEY, environmentWarnings, loadConfig, setDemoUpstreamUrl, type GatewayConfig } from './config.js'
import { startDemoUpstreamSomewhere } from './demo-upstream.js'
import { ConfigError } from '../lib/errors.js'
import { registeredRoutes } from './route.js'
import { riskWarnings } from './risks.js'
import { GenerationSwitch, type ReloadOutcome } from './reload.js'
import { readServerSecureContext, ServerTlsContext, type ServerSecureContext } from './server-tls.js'

export type { ReloadOutcome } from './reload.js'

export interface RunningGateway {
  /** The app serving new requests (another after each successful reload). */
  readonly app: FastifyInstance
  /** The configuration of `app`. */
  readonly config: GatewayConfig
  readonly url: string
  /**
   * Builds the configuration afresh from the environment and the files it names (routes, TLS
   * certificate, JWKS fetched again) and serves it once it is complete; a configuration with
   * problems is refused with one warning and the running one keeps serving. Never throws.
   */
  reload: () => Promise<ReloadOutcome>
  close: () => Promise<void>
}

function printRoutes (app: FastifyInstance, config: GatewayConfig, url: string): void {
  const routes = app.portcullisProxy.routes
  for (const r of routes) {
    app.log.info(`route ${r.hosts.length > 0 ? `${r.hosts.join(',')} ` : ''}${r.prefix} -> ${r.targets.join(', ')} (auth: ${r.auth}, rateLimit: ${r.rateLimit}, inspect: ${r.inspect}${r.openapi !== 'off' ? `, openapi: ${r.openapi}` : ''}${r.websocket ? ', websocket' : ''})`)
  }
  const first = routes.find((r) => r.auth !== 'public') ?? routes[0]
  if (first !== undefined) {
    const path = `${first.prefix === '/' ? '' : first.prefix}/hello`
    const demoKey = !config.production && config.auth.apiKeys.some((k) => k.key === DEMO_API_KEY)
    // first.auth: 'public', 'any configured' or the strategies joined by '|' (then ' scopes=...')
    const strategies = first.auth.split(' ')[0].split('|')
    const takesKey = strategies.includes('apiKey') || strategies[0] === 'any'
    const cred = first.auth === 'public'
      ? ''
      : demoKey && takesKey
        ? `-H 'x-api-key: ${DEMO_API_KEY}' `
        : takesKey && !strategies.includes('jwt') ? "-H 'x-api-key: <key>' " : "-H 'authorization: Bearer <token>' "
    app.log.info(`try: curl -i ${cred}${url}${path}`)
  }
}

/**
 * The route table and the `try: curl` hint are startup information for a person: printed by one
 * process only (the single process, or the first cluster worker), never repeated per worker.
 */
function printsStartupHints (): boolean {
  return !cluster.isWorker || cluster.worker?.id === 1
}

/**
 * An installed package has no bundled routes/ folder: without ROUTES_DIR there is nothing to
 * serve, which must read as a configuration error, not as a file-system error.
 */
export function routesProblem (config: GatewayConfig): ConfigError | undefined {
  if (config.routesDir !== undefined || existsSync(DEFAULT_ROUTES_DIR)) return undefined
  return new ConfigError('invalid environment', ['ROUTES_DIR: not set, and this installation has no bundled routes; set ROUTES_DIR to a folder of route modules (each `export default defineRoute({...})`)'])
}

type SonicBoom = ReturnType<typeof pino.destination>

/**
 * Writes out the buffered log lines. A stdout nobody reads any more (the log collector died: EPIPE)
 * must not stop a drain: the lines are dropped (sonic-boom 5 throws there instead of retrying
 * forever with the event loop blocked, which held SIGTERM past DRAIN_TIMEOUT_MS).
 */
function flushLog (destination: SonicBoom): void {
  try {
    destination.flushSync()
  } catch {}
}

const buffered = new Set<SonicBoom>()
let exitHookInstalled = false

/**
 * stdout for the logger: lines gathered up to `bytes` per write (one write system call per line
 * cost ~7 µs of CPU per request at info level), written at least every second, on close and at
 * exit. Undefined = pino's default (one synchronous write per line). sonic-boom needs its
 * largest write above the buffer (its default, 16 KiB, is not above a 16 KiB buffer); larger
 * buffers are not allowed because each line appended costs a pass over the pending text.
 */
function logDestination (bytes: number): SonicBoom | undefined {
  if (bytes === 0) return undefined
  const destination = pino.destination({ dest: 1, sync: true, minLength: bytes, maxWrite: 2 * Math.max(bytes, 8192), periodicFlush: 1000 })
  buffered.add(destination)
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.once('exit', () => {
      for (const d of buffered) {
        flushLog(d)
      }
    })
  }
  return destination
}

async function closeServer (server: Server | undefined): Promise<void> {
  if (server === undefined) return
  await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
}

/** Starts the gateway from an environment; used by the process entry and by tests. */
export async function start (env: NodeJS.ProcessEnv = process.env): Promise<RunningGateway> {
  const config = loadConfig(env)
  const noRoutes = routesProblem(config)
  if (noRoutes !== undefined) throw noRoutes
  // Before the route modules load: upstreamFromEnv() points them at the port really held.
  let demo: Awaited<ReturnType<typeof startDemoUpstreamSomewhere>> | undefined
  if (config.demoUpstreamPort !== undefined) {
    demo = await startDemoUpstreamSomewhere(config.demoUpstreamPort)
    setDemoUpstreamUrl(demo.url)
  }
  const destination = logDestination(config.logBufferBytes)
  let app: FastifyInstance
  try {
    app = await buildGateway(config, destination === undefined ? {} : { logger: { ...loggerOptions(config) as object, stream: destination } })
  } catch (err) {
    await closeServer(demo?.server)
    throw err
  } finally {
    setDemoUpstreamUrl(undefined)
  }
  if (demo?.moved === true) {
    app.log.warn(`demo upstream on ${demo.url} (development only): DEMO_UPSTREAM_PORT ${String(config.demoUpstreamPort)} is taken by another program`)
  } else if (demo !== undefined) {
    app.log.info(`demo upstream on ${demo.url} (development only)`)
  }
  // After the routes loaded: the variables they read are known and not taken for typos.
  for (const warning of environmentWarnings(env)) app.log.warn(warning)
  // The warnings of `portcullis check`; in development only at debug (the demo setup has some by design).
  for (const risk of riskWarnings(config, registeredRoutes(app))) {
    app.log[config.production ? 'warn' : 'debug']({ risk: risk.id }, `configuration warning: ${risk.source}: ${risk.message}; ${risk.fix}`)
  }
  await app.listen({ port: config.port, host: config.host })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.port
  const scheme = config.tls === undefined ? 'http' : 'https'
  const url = `${scheme}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`
  if (cluster.isWorker) process.send?.(WORKER_SERVING)
  if (printsStartupHints()) printRoutes(app, config, url)
  if (destination !== undefined) flushLog(destination)
  const generations = new GenerationSwitch(app.server, app)
  // The listener's secure context, replaced by reloads; the client CA and CRL also on file changes.
  let credentials: ServerTlsContext | undefined
  if (config.tls !== undefined) {
    try {
      credentials = new ServerTlsContext(app.server as unknown as TlsServer, config.tls, readServerSecureContext(config.tls), () => generations.app.log)
    } catch (err) {
      await app.close()
      throw err
    }
    credentials.watch()
  }
  let current = config
  let reloading: Promise<ReloadOutcome> | undefined
  let again = false

  /** Builds the next configuration; problems are returned, nothing changes until it is ready. */
  async function build (version: number): Promise<ReloadOutcome & { app?: FastifyInstance, config?: GatewayConfig, tls?: ServerSecureContext }> {
    let next: GatewayConfig
    try {
      next = loadConfig(env)
      const noRoutes = routesProblem(next)
      if (noRoutes !== undefined) throw noRoutes
    } catch (err) {
      return { ok: false, problems: problemsOf(err) }
    }
    const restartOnly = restartOnlyChanges(config, next)
    let tls: ServerSecureContext | undefined
    if (next.tls !== undefined && restartOnly.length === 0) {
      try {
        // Every TLS file afresh: the certificate and key, the client CA bundle and the CRLs.
        tls = readServerSecureContext(next.tls)
      } catch (err) {
        return { ok: false, problems: [(err as Error).message] }
      }
    }
    if (restartOnly.length > 0) return { ok: false, problems: restartOnly }
    // ADMIN_PORT=0: the port the running gateway bound (its listener is shared, never moved).
    const adminPort = Number(/:(\d+)$/.exec(app.hasDecorator('portcullisAdmin') ? app.portcullisAdmin.url ?? '' : '')?.[1])
    if (next.admin.port === 0 && adminPort > 0) next = { ...next, admin: { ...next.admin, port: adminPort } }
    if (demo !== undefined) setDemoUpstreamUrl(demo.url)
    let nextApp: FastifyInstance | undefined
    try {
      nextApp = await buildGateway(next, { reloadVersion: version, ...(destination === undefined ? {} : { logger: { ...loggerOptions(next) as object, stream: destination } }) })
      await nextApp.ready()
    } catch (err) {
      await nextApp?.close().catch(() => {})
      return { ok: false, problems: problemsOf(err) }
    } finally {
      setDemoUpstreamUrl(undefined)
    }
    return { ok: true, problems: [], app: nextApp, config: next, ...(tls !== undefined ? { tls } : {}) }
  }

  async function reloadOnce (): Promise<ReloadOutcome> {
    const log = generations.app.log
    const version = ++generations.generation
    const started = performance.now()
    const built = await build(version)
    if (!built.ok || built.app === undefined || built.config === undefined) {
      log.warn({ problems: built.problems }, `configuration reload refused, the running configuration keeps serving: ${built.problems.join('; ')}`)
      // A revocation must not wait for a good configuration: the client CA and CRL are re-read on their own.
      credentials?.reloadClientCa()
      return { ok: false, problems: built.problems }
    }
    if (built.tls !== undefined) credentials?.use(built.tls)
    const previous = generations.app
    generations.swap(built.app)
    current = built.config
    if (built.app.hasDecorator('portcullisAdmin')) built.app.portcullisAdmin.reload = reload
    if (previous.hasDecorator('portcullisAdmin')) previous.portcullisAdmin.reload = undefined
    for (const warning of environmentWarnings(env)) built.app.log.warn(warning)
    for (const risk of riskWarnings(built.config, registeredRoutes(built.app))) {
      built.app.log[built.config.production ? 'warn' : 'debug']({ risk: risk.id }, `configuration warning: ${risk.source}: ${risk.message}; ${risk.fix}`)
    }
    const routes = built.app.portcullisProxy.routes.map((r) => r.prefix)
    built.app.log.info({ generation: version, routes, ms: Math.round(performance.now() - started) }, `configuration reloaded (${routes.length} routes${built.tls !== undefined ? `, TLS certificate${built.config.tls?.clientCaFile !== undefined ? ', client CA and CRL' : ''}` : ''})`)
    if (destination !== undefined) flushLog(destination)
    return { ok: true, problems: [] }
  }

  /** One reload at a time; a request during one runs once more after it (it may have missed a change). */
  async function reload (): Promise<ReloadOutcome> {
    if (reloading !== undefined) {
      again = true
      return await reloading
    }
    reloading = (async () => {
      let outcome: ReloadOutcome
      do {
        again = false
        outcome = await reloadOnce().catch((err: unknown) => ({ ok: false, problems: problemsOf(err) }))
      } while (again)
      return outcome
    })().finally(() => { reloading = undefined })
    return await reloading
  }
  if (app.hasDecorator('portcullisAdmin')) app.portcullisAdmin.reload = reload

  return {
    get app () { return generations.app },
    get config () { return current },
    url,
    reload,
    async close () {
      credentials?.close()
      const serving = generations.app
      serving.portcullisState.draining = true
      if (config.drainDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, config.drainDelayMs))
      await reloading?.catch(() => {})
      if (generations.switched) await generations.close()
      else await app.close()
      await closeServer(demo?.server)
      if (destination !== undefined) {
        flushLog(destination)
        buffered.delete(destination)
      }
    }
  }
}

/** A reload's problems, one line each (a configuration error lists its own). */
function problemsOf (err: unknown): string[] {
  if (err instanceof ConfigError) return err.lines()
  return [err instanceof Error ? err.message : String(err)]
}

/** Settings of the listening server or the process: a reload cannot change them. */
function restartOnlyChanges (running: GatewayConfig, next: GatewayConfig): string[] {
  const changed: string[] = []
  const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)
  if (running.port !== next.port || running.host !== next.host) changed.push('PORT/HOST')
  if ((running.tls === undefined) !== (next.tls === undefined) || running.tls?.http2 !== next.tls?.http2) changed.push('TLS on/off or HTTP/2')
  if (running.proxyProtocol !== next.proxyProtocol) changed.push('PROXY_PROTOCOL')
  if (!same(running.admin, next.admin)) changed.push('ADMIN_PORT/ADMIN_HOST/INSTANCE_ID')
  if (running.workers !== next.workers) changed.push('WORKERS')
  if (running.tls?.clientCaFile !== next.tls?.clientCaFile || running.tls?.clientCrlFile !== next.tls?.clientCrlFile || running.tls?.clientCertMode !== next.tls?.clientCertMode) {
    changed.push('TLS_CLIENT_CA_FILE/TLS_CLIENT_CRL_FILE/TLS_CLIENT_CERT_MODE (which files; their contents do reload)')
  }
  if (running.requestTimeoutMs !== next.requestTimeoutMs || running.keepAliveTimeoutMs !== next.keepAliveTimeoutMs || running.headersTimeoutMs !== next.headersTimeoutMs) changed.push('server timeouts')
  return changed.map((what) => `${what}: changed; a reload cannot apply it (restart the gateway)`)
}

/** Why the process could not start, in the operator's terms where Node's are cryptic. */
function startFailure (err: unknown): string {
  const e = err as NodeJS.ErrnoException & { address?: string, port?: number }
  if (e.code === 'EADDRINUSE' && e.port !== undefined) {
    const variable = process.env.ADMIN_PORT !== undefined && Number(process.env.ADMIN_PORT) === e.port ? 'ADMIN_PORT' : 'PORT'
    return `${e.address ?? ''}:${e.port} is already in use by another program (another gateway still running?); stop it, or set ${variable} to a free port`
  }
  if (e.code === 'EACCES' && e.port !== undefined) {
    return `no permission to listen on port ${e.port} (ports below 1024 need privileges); set PORT to 1024 or above`
  }
  return err instanceof Error ? err.message : String(err)
}

/**
 * What SIGHUP runs after the configuration reload (`RunningGateway.reload`), in order; a task
 * that throws is logged and the next runs.
 */
export const reloadTasks: Array<(running: RunningGateway) => Promise<unknown>> = []

/** The process entry: `npm start`, and `portcullis` / `portcullis start`. */
export async function runServer (): Promise<void> {
  let running: RunningGateway
  try {
    const config = loadConfig(process.env)
    const noRoutes = routesProblem(config)
    if (noRoutes !== undefined) throw noRoutes
    if (isClusterPrimary(config)) process.exit(await runPrimary(config))
    running = await start(process.env)
  } catch (err) {
    if (err instanceof ConfigError) {
      // A misspelt variable is often why a required one is missing.
      const warnings = environmentWarnings(process.env).map((w) => `portcullis: warning: ${w}\n`)
      process.stderr.write(err.lines().map((line) => `portcullis: configuration error: ${line}\n`).join('') + warnings.join(''))
    } else {
      process.stderr.write(`portcullis: failed to start: ${startFailure(err)}\n`)
    }
    process.exit(1)
  }
  // SIGHUP reloads the configuration, API_KEYS_FILE included (the default would end the
  // process), then runs the other reload tasks in order.
  const gateway = running
  process.on('SIGHUP', () => {
    gateway.app.log.info({ signal: 'SIGHUP' }, 'reloading the configuration')
    ;(async () => {
      const apiKeys = async (): Promise<void> => {
        // The new configuration read the file already; this names the outcome in the log even
        // when the reload itself was refused (a bad route keeps the old one, keys still change).
        const { status, keys } = gateway.app.portcullisAuth.reloadApiKeys()
        gateway.app.log.info({ signal: 'SIGHUP', status, apiKeys: keys }, 'API keys re-read')
      }
      for (const task of [async () => await gateway.reload(), apiKeys, ...reloadTasks]) {
        await task(gateway).catch((err: unknown) => { gateway.app.log.error({ err }, 'reload failed') })
      }
    })().catch(() => {})
  })
  closeWithGrace({ delay: running.config.drainDelayMs + running.config.drainTimeoutMs, skip: ['SIGHUP'] }, async ({ signal, err }) => {
    if (err !== undefined) running.app.log.error({ err }, 'shutting down after an error')
    else running.app.log.info({ signal }, 'draining')
    await running.close()
  })
}

const entry = process.argv[1]
if (entry !== undefined && realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url))) {
  runServer().catch((err: unknown) => {
    process.stderr.write(`portcullis: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  })
}
