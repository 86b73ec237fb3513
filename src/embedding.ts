/**
 * What a host Fastify app passes to `Fastify()` to log as the gateway does: pino with credential
 * headers redacted and secret-looking query values masked, the gateway's request ids, and one
 * access line per request (the observability plugin's) instead of Fastify's two request lines,
 * whose URL would carry `?token=...` in clear.
 *
 *   const app = Fastify({ ...hostServerOptions({ logLevel: 'info' }), ...yourOptions })
 */
import { LogController, type FastifyServerOptions } from 'fastify'
import { loggerOptions } from './app.js'
import { genRequestId } from '../plugins/observability/index.js'

export interface HostServerOptionsInput {
  /** pino level (default `info`). */
  readonly logLevel?: string
}

/** The logging and request-id slice of the gateway's Fastify server options, for a host app. */
export type HostServerOptions = Pick<FastifyServerOptions, 'logger' | 'genReqId' | 'requestIdHeader' | 'logController'>

/**
 * Fastify server options for a host that embeds the gateway plugins: the gateway's logger
 * options (`loggerOptions`), `genReqId` (a sane incoming `x-request-id` is kept, otherwise a new
 * id), and Fastify's own request logging off (the observability plugin writes the access line).
 */
export function hostServerOptions (input: HostServerOptionsInput = {}): HostServerOptions {
  return {
    logger: loggerOptions({ logLevel: input.logLevel ?? 'info' }),
    genReqId: genRequestId,
    requestIdHeader: false,
    logController: new LogController({ disableRequestLogging: true })
  }
}
