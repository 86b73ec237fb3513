/**
 * Builds a real gateway from an environment and route plugins, listening on 127.0.0.1:0.
 */
import { Writable } from 'node:stream'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import pino from 'pino'
import { buildGateway, loadConfig, type GatewayConfig } from 'portcullis'

interface Teardown { teardown: (fn: () => unknown) => void }

export interface TestGateway {
  readonly app: FastifyInstance
  readonly url: string
  readonly port: number
  readonly config: GatewayConfig
  /** Every log line written by the gateway, parsed. */
  readonly logs: Array<Record<string, unknown>>
  /** Raw log text (for canary searches). */
  logText: () => string
}

export interface StartGatewayOptions {
  env?: Record<string, string>
  routes?: FastifyPluginAsync[]
  /** Log level (default debug, so tests see every line the gateway could write). */
  logLevel?: string
  /** Do not listen (for inject-only tests). */
  listen?: boolean
}

/** Starts a gateway with the given env and routes; closed on teardown. */
export async function startGateway (t: Teardown, opts: StartGatewayOptions = {}): Promise<TestGateway> {
  // A generous engine budget: on a busy test machine one evaluation can pass the 50 ms default,
  // and a timeout blocks (fail closed); tests of the budget set INSPECT_TIMEOUT_MS themselves.
  const env: Record<string, string> = { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: opts.logLevel ?? 'debug', INSPECT_TIMEOUT_MS: '10000', ...opts.env }
  const config = loadConfig(env)
  const logs: Array<Record<string, unknown>> = []
  let text = ''
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      const s = chunk.toString()
      text += s
      for (const line of s.split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    }
  })
  const { loggerOptions } = await import('portcullis')
  const lo = loggerOptions(config) as pino.LoggerOptions
  const logger = pino(lo, sink)
  const app = await buildGateway(config, { loggerInstance: logger, ...(opts.routes !== undefined ? { routes: opts.routes } : {}) })
  t.teardown(async () => { await app.close() })
  let port = 0
  if (opts.listen !== false) {
    await app.listen({ port: 0, host: '127.0.0.1' })
    const addr = app.server.address()
    port = typeof addr === 'object' && addr !== null ? addr.port : 0
  } else {
    await app.ready()
  }
  return { app, url: `http://127.0.0.1:${port}`, port, config, logs, logText: () => text }
}
