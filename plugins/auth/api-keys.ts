/**
 * API-key store. Keys are held only as SHA-256 digests of a per-process random pepper and the
 * key, 32 bytes each in one contiguous buffer. A Map from the digest's first 30 bits (a small
 * integer, stored inline in the hash table) to the entry index narrows a lookup to one entry (or
 * a handful on a prefix collision), whose full digest is then compared in constant time
 * (crypto.timingSafeEqual). So a lookup costs one digest, one Map probe and one 32-byte compare
 * whatever the number of keys: flat from 10 to 1,000,000, at about 70 bytes per key.
 *
 * A key may carry scopes (shared, frozen, by consumer and scope list) and an expiry (a
 * Float64Array of epoch milliseconds, allocated only when some key expires). A store is
 * immutable: a reload builds a new one and the auth plugin swaps the reference.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Consumer } from '../../lib/consumer.js'

/** What `lookup` returns for a known key past its expiry. */
export const KEY_EXPIRED = 'expired'

const MIN_KEY_LENGTH = 16
const MAX_KEY_LENGTH = 512
const DIGEST_BYTES = 32

export class ApiKeyStore {
  readonly #pepper = randomBytes(32)
  readonly #digests: Buffer
  readonly #owners: Consumer[]
  /** Expiry per entry (epoch ms; Infinity = never), or undefined when no key expires. */
  readonly #expires: Float64Array | undefined
  /** Digest prefix (30 bits, a Smi) -> entry index, or indices when prefixes collide. */
  readonly #index = new Map<number, number | number[]>()

  constructor (entries: ReadonlyArray<{ readonly consumer: string, readonly key: string, readonly scopes?: readonly string[], readonly expires?: string }>) {
    this.#digests = Buffer.alloc(entries.length * DIGEST_BYTES)
    this.#owners = new Array<Consumer>(entries.length)
    this.#expires = entries.some((e) => e.expires !== undefined) ? new Float64Array(entries.length).fill(Infinity) : undefined
    const consumers = new Map<string, Consumer>()
    entries.forEach(({ consumer, key, scopes, expires }, i) => {
      const shape = scopes === undefined || scopes.length === 0 ? consumer : `${consumer}\n${scopes.join(' ')}`
      let c = consumers.get(shape)
      if (c === undefined) {
        c = Object.freeze({ id: consumer, strategy: 'apiKey' as const, scopes: Object.freeze([...(scopes ?? [])]) })
        consumers.set(shape, c)
      }
      this.#owners[i] = c
      if (expires !== undefined && this.#expires !== undefined) this.#expires[i] = Date.parse(expires)
      const digest = this.#digest(key)
      digest.copy(this.#digests, i * DIGEST_BYTES)
      const slot = digest.readUInt32LE(0) >>> 2
      const prev = this.#index.get(slot)
      this.#index.set(slot, prev === undefined ? i : Array.isArray(prev) ? [...prev, i] : [prev, i])
    })
  }

  get size (): number { return this.#owners.length }

  #digest (key: string): Buffer {
    return createHash('sha256').update(this.#pepper).update(key).digest()
  }

  #match (digest: Buffer, i: number): Consumer | typeof KEY_EXPIRED | undefined {
    const start = i * DIGEST_BYTES
    if (!timingSafeEqual(digest, this.#digests.subarray(start, start + DIGEST_BYTES))) return undefined
    if (this.#expires !== undefined && Date.now() >= (this.#expires[i] as number)) return KEY_EXPIRED
    return this.#owners[i]
  }

  /** The consumer owning `key`, KEY_EXPIRED when the key is known but past its expiry, or undefined. */
  lookup (key: string): Consumer | typeof KEY_EXPIRED | undefined {
    if (key.length < MIN_KEY_LENGTH || key.length > MAX_KEY_LENGTH) return undefined
    const digest = this.#digest(key)
    const hit = this.#index.get(digest.readUInt32LE(0) >>> 2)
    if (hit === undefined) return undefined
    if (typeof hit === 'number') return this.#match(digest, hit)
    for (const i of hit) {
      const c = this.#match(digest, i)
      if (c !== undefined) return c
    }
    return undefined
  }
}
