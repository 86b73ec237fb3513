/**
 * Signals plugins publish for metrics and audit, on node:diagnostics_channel.
 * Publishing is free when nobody subscribes (check `hasSubscribers` first), so a plugin
 * never pays for metrics that are off.
 */
import diagnostics from 'node:diagnostics_channel'

/** An authentication or authorization failure (reason is a fixed token, never credential data). */
export interface AuthFailureSignal { readonly route: string, readonly status: 401 | 403, readonly reason: string }
/** A request refused by a rate limit. */
export interface RateLimitedSignal { readonly route: string, readonly tier: 'ip' | 'route' }
/** A request the inspection engine matched (blocked, or would have been in detect mode). */
export interface InspectMatchSignal { readonly route: string, readonly ruleId: string, readonly family: string, readonly blocked: boolean }
/** The shared store changed state (`up`, `down`) or an operation failed and the failure mode applied. */
export interface StoreStateSignal { readonly store: 'redis', readonly state: 'up' | 'down' | 'error' }
/** An upstream attempt failed (kind: refused, reset, timeout, unavailable, invalid, overload). */
export interface UpstreamErrorSignal { readonly route: string, readonly kind: string }

export const authFailure = diagnostics.channel('portcullis:auth.failure')
export const rateLimited = diagnostics.channel('portcullis:rate-limit.limited')
export const inspectMatch = diagnostics.channel('portcullis:inspect.match')
export const storeState = diagnostics.channel('portcullis:store.state')
export const upstreamError = diagnostics.channel('portcullis:upstream.error')

/**
 * A request or response that broke its route's API contract (kind: path, query, header, cookie,
 * body, media-type, security, unknown-operation, method, shadow, response-status, response-body,
 * response-unvalidated), or a body the contract accepted unvalidated (body-unvalidated: XML);
 * operation is the document's `METHOD /template`, `(unknown)` otherwise.
 */
export interface ContractViolationSignal { readonly route: string, readonly operation: string, readonly kind: string, readonly blocked: boolean }
export const contractViolation = diagnostics.channel('portcullis:contract.violation')
