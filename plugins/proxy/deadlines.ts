/**
 * Upstream deadlines without a timer per request.
 *
 * The response-header timeout and the body-idle timeout of every in-flight upstream exchange are
 * a number on the exchange, kept in one intrusive doubly linked list that a single interval
 * timer sweeps. undici's own per-request timeouts (`headersTimeout`, `bodyTimeout`) allocate a
 * timer object per request that stays referenced until undici's next 500 ms tick: at thousands
 * of requests a second that garbage outlives the young generation and grows the old one (the
 * benchmark's peak RSS was ~14 MB higher with them). Here arming, refreshing and disarming a
 * deadline is a few field writes.
 *
 * The sweep runs every tenth of the smallest timeout any pool uses (10 to 250 ms), and only
 * while some deadline is armed. A deadline fires late by at most one tick, never early. The sweep
 * also asks each armed item whether its work is still wanted (`abandoned()`: an exchange whose
 * client has left before the upstream answered), which costs the request path nothing.
 */

/** Something with a deadline: an upstream exchange (exchange.ts). */
export interface Deadlined {
  /** Epoch milliseconds after which `expire()` is called (while armed). */
  deadline: number
  /** List links (owned by the list). */
  prevDeadlined: Deadlined | null
  nextDeadlined: Deadlined | null
  armed: boolean
  /** Whether the work is no longer wanted (checked at each sweep; then `expire()` is called). */
  abandoned: () => boolean
  /** Called once when the deadline passes or the work is abandoned (the exchange aborts its upstream request). */
  expire: () => void
}

const MIN_TICK_MS = 10
const MAX_TICK_MS = 250

export class DeadlineList {
  private head: Deadlined | null = null
  private timer: NodeJS.Timeout | null = null
  private tickMs = MAX_TICK_MS

  /** Declares a timeout in use, so that the sweep runs often enough for it. */
  register (timeoutMs: number): void {
    if (!(timeoutMs > 0)) return
    const tick = Math.max(MIN_TICK_MS, Math.min(MAX_TICK_MS, Math.floor(timeoutMs / 10)))
    if (tick >= this.tickMs) return
    this.tickMs = tick
    if (this.timer !== null) {
      clearInterval(this.timer)
      this.timer = null
      this.start()
    }
  }

  /** Arms (or moves) `x`'s deadline to `deadline`. */
  arm (x: Deadlined, deadline: number): void {
    x.deadline = deadline
    if (!x.armed) {
      x.armed = true
      x.prevDeadlined = null
      x.nextDeadlined = this.head
      if (this.head !== null) this.head.prevDeadlined = x
      this.head = x
    }
    if (this.timer === null) this.start()
  }

  /** Disarms `x` (no-op when it is not armed). */
  disarm (x: Deadlined): void {
    if (!x.armed) return
    x.armed = false
    const prev = x.prevDeadlined
    const next = x.nextDeadlined
    if (prev === null) this.head = next
    else prev.nextDeadlined = next
    if (next !== null) next.prevDeadlined = prev
    x.prevDeadlined = null
    x.nextDeadlined = null
  }

  /** Expires every armed item whose deadline has passed or that is abandoned; stops the timer when none is armed. */
  sweep (now: number = Date.now()): void {
    if (this.head === null) {
      if (this.timer !== null) clearInterval(this.timer)
      this.timer = null
      return
    }
    let x: Deadlined | null = this.head
    while (x !== null) {
      const next: Deadlined | null = x.nextDeadlined
      if (x.deadline <= now || x.abandoned()) {
        this.disarm(x)
        x.expire()
      }
      x = next
    }
  }

  /** The number of armed deadlines (tests). */
  get size (): number {
    let n = 0
    for (let x = this.head; x !== null; x = x.nextDeadlined) n++
    return n
  }

  private start (): void {
    this.timer = setInterval(sweepTick, this.tickMs, this)
    this.timer.unref()
  }
}

function sweepTick (list: DeadlineList): void {
  list.sweep()
}

/** The process's list: every pool's exchanges share one sweep. */
export const upstreamDeadlines = new DeadlineList()
