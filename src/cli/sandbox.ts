/**
 * The gateway on the operator's configuration, listening on loopback, with every route's
 * upstream replaced by one recording stand-in: requests can be sent through the real chain
 * and what would have reached each upstream is recorded. No real upstream, no shared Redis
 * (limits in memory), no metrics listener.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildGateway } from '../app.js'
import { loadConfig, type GatewayConfig } from '../config.js'
import { ConfigError } from '../../lib/errors.js'
import { defineRoute, type RouteDefinition, type RoutePlugin } from '../route.js'
import { DEFAULT_ROUTES_DIR, loadRouteModules } from '../route-loader.js'
import { routesProblem } from '../server.js'
import { effectiveRoute, type EffectiveRoute } from './effective.js'
import { toProblems, type Problem } from './load.js'

const MARK = '/__portcullis-route-'
/** The inspection time budget in the sandbox (INSPECT_TIMEOUT_MS when larger). */
const SANDBOX_INSPECT_TIMEOUT_MS = 10_000

export interface Received {
  /** Index of the route (in `Sandbox.routes`) whose upstream received the request. */
  readonly route: number
  readonly method: string
  /** The path and query the real upstream would have received. */
  readonly target: string
  readonly headers: IncomingHttpHeaders
  readonly bodyBytes: number
}

export interface Sandbox {
  readonly url: string
  readonly port: number
  readonly config: GatewayConfig
  /** The operator's routes (original upstreams), in load order. */
  readonly definitions: readonly RoutePlugin[]
  readonly routes: readonly EffectiveRoute[]
  readonly received: Received[]
  close: () => Promise<void>
}

export interface SandboxOptions {
  readonly routesDir?: string
  /** Route rate limits off (probes must not be masked by 429s). */
  readonly noRouteLimits?: boolean
}

async function recorder (received: Received[]): Promise<Server> {
  const server = createServer((req, res) => {
    let bytes = 0
    req.on('data', (c: Buffer) => { bytes += c.length })
    req.on('end', () => {
      const url = req.url ?? '/'
      const m = /^\/__portcullis-route-(\d+)(.*)$/s.exec(url)
      if (m !== null) received.push({ route: Number(m[1]), method: req.method ?? '', target: m[2] === '' ? '/' : (m[2] as string), headers: req.headers, bodyBytes: bytes })
      res.setHeader('content-type', 'text/plain')
      res.end('stand-in upstream\n')
    })
  })
  server.on('upgrade', (req, socket) => {
    const m = /^\/__portcullis-route-(\d+)(.*)$/s.exec(req.url ?? '/')
    if (m !== null) received.push({ route: Number(m[1]), method: `${req.method ?? ''} (upgrade)`, target: m[2] === '' ? '/' : (m[2] as string), headers: req.headers, bodyBytes: 0 })
    socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return server
}

/** Starts the sandbox; problems (invalid configuration) are returned, not thrown. */
export async function startSandbox (env: NodeJS.ProcessEnv, opts: SandboxOptions = {}): Promise<{ sandbox?: Sandbox, problems: readonly Problem[] }> {
  const e = opts.routesDir !== undefined ? { ...env, ROUTES_DIR: opts.routesDir } : env
  let config: GatewayConfig
  let definitions: RoutePlugin[]
  try {
    config = loadConfig(e)
    const noRoutes = routesProblem(config)
    if (noRoutes !== undefined) throw noRoutes
    definitions = await loadRouteModules(config.routesDir ?? DEFAULT_ROUTES_DIR, config.production)
  } catch (err) {
    if (err instanceof ConfigError) return { problems: toProblems(err) }
    throw err
  }
  const received: Received[] = []
  const standIn = await recorder(received)
  const base = `http://127.0.0.1:${(standIn.address() as AddressInfo).port}`
  const sandboxed = definitions.map((d, i) => {
    const o = d.routeOptions
    const first = new URL(Array.isArray(o.upstream) ? o.upstream[0] as string : o.upstream as string)
    const options = {
      ...o,
      upstream: `${base}${MARK}${i}${first.pathname.replace(/\/+$/, '')}`,
      healthCheck: false,
      // One local stand-in: a refused or cut-off probe must not take it out for the next ones.
      circuitBreaker: false,
      ...(opts.noRouteLimits === true ? { rateLimit: false } : {})
    } as RouteDefinition
    return defineRoute(options)
  })
  const sandboxConfig: GatewayConfig = {
    ...config,
    admin: { ...config.admin, port: undefined },
    // Never the operator's Redis: probes must not spend real budgets.
    rateLimit: { ...config.rateLimit, redisUrl: undefined, redisSentinels: undefined, redisSentinelName: undefined, redisClusterNodes: undefined, ...(opts.noRouteLimits === true ? { ipMax: 1_000_000 } : {}) },
    // The verdict is the rules', not the machine's load: an engine timeout (fail closed) would
    // read as a refusal.
    inspect: { ...config.inspect, timeoutMs: Math.max(config.inspect.timeoutMs, SANDBOX_INSPECT_TIMEOUT_MS) }
  }
  let app: FastifyInstance | undefined
  try {
    app = await buildGateway(sandboxConfig, { routes: sandboxed, logger: false })
    await app.listen({ port: 0, host: '127.0.0.1' })
  } catch (err) {
    await app?.close()
    await new Promise<void>((resolve) => standIn.close(() => resolve()))
    if (err instanceof ConfigError) return { problems: toProblems(err) }
    throw err
  }
  const port = (app.server.address() as AddressInfo).port
  const gateway = app
  return {
    problems: [],
    sandbox: {
      url: `http://127.0.0.1:${port}`,
      port,
      config,
      definitions,
      routes: definitions.map((d) => effectiveRoute(d, config)),
      received,
      async close () {
        await gateway.close()
        standIn.closeAllConnections()
        await new Promise<void>((resolve) => standIn.close(() => resolve()))
      }
    }
  }
}

export interface RawResponse {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
  /** What the connection returned, as text (bounded). */
  readonly raw: string
}

/** Sends bytes as they are over a new connection and reads until the gateway closes it (bounded in time and size). */
export async function sendRaw (port: number, request: string | Buffer, timeoutMs = 5000): Promise<RawResponse> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    let size = 0
    const finish = (): void => {
      clearTimeout(timer)
      socket.destroy()
      const raw = Buffer.concat(chunks).toString('latin1')
      const head = raw.split('\r\n\r\n')[0] ?? ''
      const [statusLine = '', ...lines] = head.split('\r\n')
      const headers: Record<string, string> = {}
      for (const l of lines) {
        const i = l.indexOf(':')
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
      }
      const status = Number(/^HTTP\/\d(?:\.\d)? (\d{3})/.exec(statusLine)?.[1] ?? 0)
      resolve({ status, headers, body: raw.slice(head.length + 4), raw: raw.slice(0, 4096) })
    }
    const timer = setTimeout(finish, timeoutMs)
    socket.on('data', (c: Buffer) => {
      size += c.length
      if (size <= 1 << 20) chunks.push(c)
    })
    socket.on('close', finish)
    socket.on('error', () => {})
    socket.write(request)
  })
}
