/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): parse `traceparent`, validate
 * `tracestate`, and make ids. Ids come from a pooled CSPRNG buffer, so a request costs one
 * slice of it, not a syscall.
 */
import { randomFillSync } from 'node:crypto'

/** `version-traceid-parentid-flags`, lower-case hex (§3.2.2). */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-|$)/
const ZERO_TRACE = '00000000000000000000000000000000'
const ZERO_SPAN = '0000000000000000'

/** One list member: `key=value` with the §3.3.1 key and value grammar (multi-tenant keys too). */
const TRACESTATE_MEMBER = /^(?:[a-z0-9][_0-9a-z*/-]{0,255}|[a-z0-9][_0-9a-z*/-]{0,240}@[a-z][_0-9a-z*/-]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/
const TRACESTATE_MAX_LENGTH = 512
const TRACESTATE_MAX_MEMBERS = 32

export interface ParentContext {
  readonly traceId: string
  readonly parentId: string
  readonly flags: string
}

/** The parent context of a valid `traceparent`, or undefined (absent, malformed, or a forbidden value). */
export function parseTraceparent (header: string | string[] | undefined): ParentContext | undefined {
  if (typeof header !== 'string' || header.length < 55) return undefined
  const m = TRACEPARENT.exec(header)
  if (m === null) return undefined
  const version = m[1] as string
  // Version ff is invalid; version 00 has exactly four fields; later versions may append fields.
  if (version === 'ff' || (version === '00' && header.length !== 55)) return undefined
  const traceId = m[2] as string
  const parentId = m[3] as string
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return undefined
  return { traceId, parentId, flags: m[4] as string }
}

/** `tracestate` when it is a valid list (§3.3), else undefined (it is then dropped, not repaired). */
export function validTracestate (header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header.join(',') : header
  if (value === undefined || value.length > TRACESTATE_MAX_LENGTH * 2) return undefined
  const members = value.split(',')
  const kept: string[] = []
  const keys = new Set<string>()
  for (const raw of members) {
    const member = raw.trim()
    if (member === '') continue
    if (!TRACESTATE_MEMBER.test(member)) return undefined
    const key = member.slice(0, member.indexOf('='))
    if (keys.has(key)) return undefined
    keys.add(key)
    kept.push(member)
  }
  if (kept.length === 0 || kept.length > TRACESTATE_MAX_MEMBERS) return undefined
  const out = kept.join(',')
  return out.length <= TRACESTATE_MAX_LENGTH ? out : undefined
}

const POOL_BYTES = 8192
const pool = Buffer.allocUnsafe(POOL_BYTES)
let offset = POOL_BYTES

/** `bytes` random bytes as lower-case hex, never all zeros. */
export function randomHex (bytes: 8 | 16): string {
  for (;;) {
    if (offset + bytes > POOL_BYTES) {
      randomFillSync(pool)
      offset = 0
    }
    const hex = pool.toString('hex', offset, offset + bytes)
    offset += bytes
    if (hex !== ZERO_SPAN && hex !== ZERO_TRACE) return hex
  }
}
