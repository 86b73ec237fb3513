/**
 * Request ids: an incoming `x-request-id` is accepted only when well formed, otherwise one is
 * generated. Pass `genRequestId` as Fastify's `genReqId` (the gateway does; a host app may).
 */
import { randomUUID } from 'node:crypto'
import type { RawRequestDefaultExpression } from 'fastify'

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/

export function genRequestId (req: RawRequestDefaultExpression): string {
  const incoming = req.headers['x-request-id']
  return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID()
}
