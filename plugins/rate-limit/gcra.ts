/**
 * GCRA (generic cell rate algorithm, a token bucket kept as one timestamp) as a store for
 * @fastify/rate-limit, in memory and in Redis (one Lua script, atomic for every instance).
 *
 * A budget of `max` per `timeWindow` admits one request per emission interval T = timeWindow / max,
 * plus `burst` requests ahead of that pace. The state is the theoretical arrival time (TAT) of the
 * next request: a request at `now` is admitted when TAT - now <= burst x T, and then moves TAT to
 * max(TAT, now) + T. So a fresh client may send burst + 1 at once, and no span of one window
 * (half-open, [t, t + timeWindow)) ever admits more than max + burst: the k-th admitted request of
 * a span starting at t1 needs t1 + (k - 1) T - tk <= burst x T, so k - 1 < burst + max.
 * Times are integer microseconds; T is rounded up, so rounding never admits more.
 *
 * The store gets the burst from the key: the route tier's GCRA keys are `<burst>;<key>`.
 * The clock is the gateway's (`now`, injectable for tests): instances sharing a Redis need
 * synchronised clocks (NTP), as for any shared deadline.
 */
import { limitKey, type DeadlineQueue, type RateLimitStore, type StoreAnswer, type StoreCallback } from './redis-store.js'
import type { RedisClient } from './store.js'

/** The clock: epoch milliseconds. */
export type Clock = () => number

const GCRA_LUA = `
local now = tonumber(ARGV[1])
local t = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then
  tat = math.max(tonumber(stored), now)
end
if tat - now > tolerance then
  return {0, math.ceil((tat - now - tolerance) / 1000)}
end
local nextTat = tat + t
redis.call('SET', KEYS[1], string.format('%.0f', nextTat), 'PX', math.ceil((nextTat - now) / 1000))
return {1, math.floor((tolerance - (nextTat - now)) / t) + 1}
`

interface Parsed { burst: number, key: string }

/** Splits `<burst>;<key>` (the head is written by the route tier's key generator). */
function parse (raw: string): Parsed {
  const i = raw.indexOf(';')
  return { burst: Number(raw.slice(0, i)), key: raw.slice(i + 1) }
}

/** Emission interval in microseconds, rounded up. */
function intervalUs (windowMs: number, max: number): number {
  return Math.ceil(windowMs * 1000 / max)
}

/**
 * The answer @fastify/rate-limit expects: admitted requests count `max - remaining` (so its
 * headers show what is left), refused ones `max + 1` with the wait until the next admission.
 */
function answer (admitted: boolean, n: number, max: number, windowMs: number): StoreAnswer {
  if (!admitted) return { current: max + 1, ttl: Math.max(1, n) }
  return { current: Math.max(0, max - n), ttl: windowMs }
}

/** One GCRA decision on a TAT (microseconds); returns the new TAT or -1 when refused, and `n`. */
export function gcraStep (tat: number | undefined, nowUs: number, t: number, tolerance: number): { tat: number, admitted: boolean, n: number } {
  const base = tat === undefined || tat < nowUs ? nowUs : tat
  if (base - nowUs > tolerance) return { tat: base, admitted: false, n: Math.ceil((base - nowUs - tolerance) / 1000) }
  const next = base + t
  return { tat: next, admitted: true, n: Math.floor((tolerance - (next - nowUs)) / t) + 1 }
}

/** GCRA in this process's memory, at most `cacheSize` keys (the least recently used go first). */
export function memoryGcraStore (cacheSize: number, now: Clock = Date.now): new () => RateLimitStore {
  const tats = new Map<string, number>()
  return class MemoryGcraStore implements RateLimitStore {
    incr (raw: string, cb: StoreCallback, timeWindow: number, max: number): void {
      const { burst, key } = parse(raw)
      const t = intervalUs(timeWindow, max)
      const nowUs = now() * 1000
      const step = gcraStep(tats.get(key), nowUs, t, burst * t)
      if (step.admitted) {
        tats.delete(key)
        tats.set(key, step.tat)
        if (tats.size > cacheSize) tats.delete(tats.keys().next().value as string)
      }
      cb(null, answer(step.admitted, step.n, max, timeWindow))
    }

    child (): RateLimitStore {
      return this
    }
  }
}

type ScriptCallback = (err: Error | null | undefined, result?: unknown) => void
interface ScriptedRedis {
  portcullisGcra: (key: string, nowUs: number, t: number, tolerance: number, cb: ScriptCallback) => void
}

/** GCRA in Redis under `prefix` (keys `<prefix>{<key>}`, one slot per limit), every call bounded by `deadlines`. */
export function redisGcraStore (redis: RedisClient, prefix: string, deadlines: DeadlineQueue, now: Clock = Date.now): new () => RateLimitStore {
  const scripted = redis as unknown as RedisClient & ScriptedRedis
  if (typeof scripted.portcullisGcra !== 'function') {
    redis.defineCommand('portcullisGcra', { numberOfKeys: 1, lua: GCRA_LUA })
  }
  return class RedisGcraStore implements RateLimitStore {
    incr (raw: string, cb: StoreCallback, timeWindow: number, max: number): void {
      const { burst, key } = parse(raw)
      const t = intervalUs(timeWindow, max)
      const p = deadlines.add(cb)
      scripted.portcullisGcra(limitKey(prefix, key), now() * 1000, t, burst * t, (err, result) => {
        if (err != null) {
          deadlines.settle(p, err)
          return
        }
        const r = result as [number, number]
        deadlines.settle(p, null, answer(r[0] === 1, r[1], max, timeWindow))
      })
    }

    child (): RateLimitStore {
      return this
    }
  }
}
