/** One upstream target of a route's pool and its health state (passive circuit, active checks). */
import type { UpstreamTargetInfo } from '../../lib/route-contract.js'

/** One upstream target with its health state. */
export class Target implements UpstreamTargetInfo {
  readonly origin: string
  readonly host: string
  /** Consecutive passive failures. */
  failures = 0
  /** Circuit open until this time (ms epoch); 0 = closed. */
  openUntil = 0
  /** A half-open trial request is in flight. */
  trial = false
  /** Active health verdict (true when checks are off). */
  healthy = true
  probeStreak = 0

  constructor (url: URL) {
    this.origin = url.origin
    this.host = url.host
  }
}
