/**
 * The Redis counter store given to @fastify/rate-limit (its `store` option), with one bound on
 * every request's wait.
 *
 * A request waits at most `timeoutMs` from the moment it asks the store, whatever ioredis does
 * meanwhile: with auto-pipelining, commands issued while an earlier pipeline is still out (for
 * example one timing out against a hung Redis) are queued behind it and sent only when it ends,
 * so ioredis's own `commandTimeout` (armed on send) would let them wait twice as long. Pending
 * calls sit in one FIFO (their deadlines are in arrival order) swept by a single timer armed for
 * the oldest deadline: no timer per request. A call past its deadline fails with
 * `RateLimitStoreTimeoutError` (after the event loop has read the sockets once more, so a reply
 * that already arrived is not refused); its late reply, if any, is ignored.
 *
 * The fixed window is one Lua script (INCR, PEXPIRE on the first hit, PTTL otherwise), atomic for
 * every gateway instance sharing the Redis.
 *
 * Keys are `<prefix>{<limit key>}` (`limitKey`): the braces are a Redis Cluster hash tag, so
 * only the limit key picks the slot. Every key a script touches for one limit falls in one slot
 * (a Lua script may only touch keys of one slot in a cluster), the fixed-window and GCRA keys
 * of one route budget and client share it, and different limits spread over the cluster.
 */
import { RateLimitStoreTimeoutError } from '../../lib/errors.js'
import type { RedisClient } from './store.js'

/** What @fastify/rate-limit expects of a store's answer. */
export interface StoreAnswer { current: number, ttl: number }
export type StoreCallback = (err: Error | null, answer?: StoreAnswer) => void

/** The subset of the @fastify/rate-limit store contract the gateway uses. */
export interface RateLimitStore {
  incr: (key: string, cb: StoreCallback, timeWindow: number, max: number) => void
  child: () => RateLimitStore
}

const FIXED_WINDOW_LUA = `
local current = redis.call('INCR', KEYS[1])
local ttl = tonumber(ARGV[1])
if current == 1 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    ttl = tonumber(ARGV[1])
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
return {current, ttl}
`

type ScriptCallback = (err: Error | null | undefined, result?: unknown) => void
interface ScriptedRedis {
  portcullisFixedWindow: (key: string, windowMs: number, cb: ScriptCallback) => void
}

/** One call waiting on Redis. */
class Pending {
  done = false
  constructor (readonly deadline: number, readonly cb: StoreCallback) {}
}

/** Calls waiting on Redis, oldest first, and the one timer that expires them. */
export class DeadlineQueue {
  private queue: Pending[] = []
  private head = 0
  private timer: NodeJS.Timeout | null = null
  // The timer only schedules the sweep for the check phase: after a stalled event loop, timers
  // run before socket reads, and replies already received must win over their deadline.
  private readonly sweepBound = (): void => { setImmediate(this.sweepNow) }
  private readonly sweepNow = (): void => this.sweep()

  constructor (readonly timeoutMs: number, private readonly now: () => number = Date.now) {}

  /** Starts waiting; the caller settles the returned entry with `settle`. */
  add (cb: StoreCallback): Pending {
    const p = new Pending(this.now() + this.timeoutMs, cb)
    this.queue.push(p)
    if (this.timer === null) this.arm(this.timeoutMs)
    return p
  }

  /** The reply arrived: delivers it unless the deadline already failed the call. */
  settle (p: Pending, err: Error | null, answer?: StoreAnswer): void {
    if (p.done) return
    p.done = true
    p.cb(err, answer)
  }

  /** Calls still waiting (for tests and metrics). */
  get size (): number {
    let n = 0
    for (let i = this.head; i < this.queue.length; i++) if (!this.queue[i].done) n++
    return n
  }

  private arm (ms: number): void {
    this.timer = setTimeout(this.sweepBound, ms)
    this.timer.unref()
  }

  private sweep (): void {
    this.timer = null
    const now = this.now()
    const q = this.queue
    let i = this.head
    while (i < q.length) {
      const p = q[i]
      if (!p.done) {
        // Timers may fire a millisecond before the wall clock agrees.
        if (p.deadline - now > 1) break
        p.done = true
        p.cb(new RateLimitStoreTimeoutError(this.timeoutMs))
      }
      i++
    }
    if (i === q.length) {
      this.queue = []
      this.head = 0
      return
    }
    this.head = i
    if (i > 1024 && i * 2 > q.length) {
      this.queue = q.slice(i)
      this.head = 0
    }
    this.arm(Math.max(1, this.queue[this.head].deadline - now))
  }

  /** Fails every waiting call (shutdown). */
  close (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    for (let i = this.head; i < this.queue.length; i++) {
      const p = this.queue[i]
      if (!p.done) {
        p.done = true
        p.cb(new RateLimitStoreTimeoutError(this.timeoutMs))
      }
    }
    this.queue = []
    this.head = 0
  }
}

/**
 * The Redis key of one limit: `<prefix>{<key>}`. Redis hashes the text between the first `{`
 * and the next `}`; a limit key holding a `}` (a consumer id may) ends the tag early, which still
 * maps every key built for that limit to one slot. Limit keys start with `/` (routes) or a
 * client address (the per-IP tier), never with `}`, so the tag is never empty.
 */
export function limitKey (prefix: string, key: string): string {
  return `${prefix}{${key}}`
}

function answerOf (result: unknown): StoreAnswer {
  const r = result as [number, number]
  return { current: r[0], ttl: r[1] }
}

/**
 * A fixed-window store on `redis` under `prefix`, every call bounded by `deadlines`.
 * Returned as a class because @fastify/rate-limit constructs its `store` option.
 */
export function redisFixedWindowStore (redis: RedisClient, prefix: string, deadlines: DeadlineQueue): new () => RateLimitStore {
  const scripted = redis as unknown as RedisClient & ScriptedRedis
  if (typeof scripted.portcullisFixedWindow !== 'function') {
    redis.defineCommand('portcullisFixedWindow', { numberOfKeys: 1, lua: FIXED_WINDOW_LUA })
  }
  return class RedisFixedWindowStore implements RateLimitStore {
    incr (key: string, cb: StoreCallback, timeWindow: number): void {
      const p = deadlines.add(cb)
      scripted.portcullisFixedWindow(limitKey(prefix, key), timeWindow, (err, result) => {
        if (err != null) deadlines.settle(p, err)
        else deadlines.settle(p, null, answerOf(result))
      })
    }

    child (): RateLimitStore {
      return this
    }
  }
}
