/**
 * Loads a configuration for the command-line tool exactly as `npm start` does (the same
 * loadConfig, route loader and plugin registration), without listening, starting the demo
 * upstream or the metrics listener, and gathers every problem instead of stopping at the first.
 */
import type { FastifyInstance } from 'fastify'
import { buildGateway } from '../app.js'
import { loadConfig, type GatewayConfig } from '../config.js'
import { environmentWarnings } from '../config.js'
import { ConfigError } from '../../lib/errors.js'
import { registeredRoutes, type RoutePlugin } from '../route.js'
import { routesProblem } from '../server.js'

export interface Problem {
  /** The environment variable or route file the problem is about ('' when the line says it all). */
  readonly source: string
  readonly message: string
}

export interface Loaded {
  readonly config: GatewayConfig | undefined
  readonly routes: readonly RoutePlugin[]
  readonly problems: readonly Problem[]
  /** Misspelt or unknown variables (the startup warnings). */
  readonly environmentWarnings: readonly string[]
  /** The built gateway (not listening); close it when done. */
  readonly app: FastifyInstance | undefined
}

/** A ConfigError line (`SUBJECT: message`) as a problem. */
export function toProblems (err: ConfigError): Problem[] {
  return err.lines().map((line) => {
    const i = line.indexOf(': ')
    return i > 0 ? { source: line.slice(0, i), message: line.slice(i + 2) } : { source: '', message: line }
  })
}

export interface LoadOptions {
  /** Overrides ROUTES_DIR. */
  readonly routesDir?: string
  /** Changes to the loaded configuration before the gateway is built (e.g. no Redis for probes). */
  readonly adjust?: (config: GatewayConfig) => GatewayConfig
}

/** Loads the environment and the routes; problems are collected, never thrown. */
export async function loadGatewayQuietly (env: NodeJS.ProcessEnv, opts: LoadOptions = {}): Promise<Loaded> {
  const effectiveEnv = opts.routesDir !== undefined ? { ...env, ROUTES_DIR: opts.routesDir } : env
  let config: GatewayConfig
  try {
    config = loadConfig(effectiveEnv)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    return { config: undefined, routes: [], problems: toProblems(err), environmentWarnings: environmentWarnings(effectiveEnv), app: undefined }
  }
  const noRoutes = routesProblem(config)
  if (noRoutes !== undefined) return { config, routes: [], problems: toProblems(noRoutes), environmentWarnings: environmentWarnings(effectiveEnv), app: undefined }
  // The metrics listener would take ADMIN_PORT from a running gateway.
  const quiet: GatewayConfig = { ...config, admin: { ...config.admin, port: undefined } }
  let app: FastifyInstance | undefined
  try {
    app = await buildGateway(opts.adjust !== undefined ? opts.adjust(quiet) : quiet, { logger: false })
    await app.ready()
  } catch (err) {
    await app?.close()
    if (!(err instanceof ConfigError)) throw err
    return { config, routes: [], problems: toProblems(err), environmentWarnings: environmentWarnings(effectiveEnv), app: undefined }
  }
  return { config, routes: registeredRoutes(app), problems: [], environmentWarnings: environmentWarnings(effectiveEnv), app }
}
