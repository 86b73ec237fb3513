/**
 * The bounded cache of the auth strategies (verified JWTs, introspection results, forward-auth
 * decisions): an LRU of at most `max` entries, each ending at its own time. A read moves a live
 * entry to the young end and drops an ended one; a write past the bound drops the oldest entry.
 * Ended entries nobody reads again leave through the bound, so the size never passes `max`.
 */
export class ExpiringLru<V> {
  readonly #max: number
  readonly #map = new Map<string, { value: V, until: number }>()

  constructor (max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError('ExpiringLru: max must be a positive integer')
    this.#max = max
  }

  /** Entries held (ended ones included until read or pushed out). */
  get size (): number { return this.#map.size }

  /** The live value of `key` at `now`, or undefined. */
  get (key: string, now: number): V | undefined {
    const hit = this.#map.get(key)
    if (hit === undefined) return undefined
    this.#map.delete(key)
    if (now >= hit.until) return undefined
    this.#map.set(key, hit)
    return hit.value
  }

  /** Keeps `value` until `until` (not at all when that is not after `now`). */
  set (key: string, value: V, until: number, now: number): void {
    if (until <= now) return
    this.#map.delete(key)
    if (this.#map.size >= this.#max) {
      const oldest = this.#map.keys().next().value
      if (oldest !== undefined) this.#map.delete(oldest)
    }
    this.#map.set(key, { value, until })
  }

  clear (): void { this.#map.clear() }
}
