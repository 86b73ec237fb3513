/**
 * The tracing plugin's outgoing trace headers on a request, and how the proxy writes them
 * upstream. Kept apart from the plugin so plugins/proxy/headers.ts imports only this.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyRequest } from 'fastify'

/** The outgoing `traceparent` of a request (null until tracingOnRequest ran). */
export const kTraceparent = Symbol('portcullis.tracing.traceparent')
/** The outgoing `tracestate` of a request (null: none is sent). */
export const kTracestate = Symbol('portcullis.tracing.tracestate')

export interface TracedRequest { [kTraceparent]: string | null, [kTracestate]: string | null }

/**
 * Writes the request's outgoing trace headers into the headers sent upstream (in place).
 * Without the tracing plugin (nothing stored) the headers are left as they are.
 */
export function applyTraceHeaders (request: FastifyRequest, headers: IncomingHttpHeaders): void {
  const r = request as unknown as TracedRequest
  const traceparent = r[kTraceparent]
  if (traceparent === null || traceparent === undefined) return
  headers.traceparent = traceparent
  const tracestate = r[kTracestate]
  if (tracestate !== null && tracestate !== undefined) headers.tracestate = tracestate
  else if (headers.tracestate !== undefined) delete headers.tracestate
}

/** The trace id and the gateway's span id of a request (for logs), or undefined. */
export function traceIdsOf (request: FastifyRequest): { traceId: string, spanId: string } | undefined {
  const tp = (request as unknown as TracedRequest)[kTraceparent]
  if (tp === null || tp === undefined) return undefined
  return { traceId: tp.slice(3, 35), spanId: tp.slice(36, 52) }
}
