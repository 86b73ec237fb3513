/**
 * Polls until something observable happens, instead of sleeping for a guessed time.
 * The timeout only guards against a hang; it is not a performance bound, so it is generous.
 */

export interface WaitForOptions {
  /** Give up after this long (default 15 s). */
  timeoutMs?: number
  /** Poll this often (default 10 ms). */
  intervalMs?: number
  /** Names the condition in the failure. */
  message?: string
}

/**
 * Resolves with the first truthy value `condition` returns (sync or async); rejects with
 * `message` once `timeoutMs` has passed without one. A throwing condition counts as not yet.
 */
export async function waitFor<T> (condition: () => T | Promise<T>, opts: WaitForOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 15_000
  const intervalMs = opts.intervalMs ?? 10
  const until = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await condition()
      if (value) return value as NonNullable<T>
    } catch (err) {
      last = err
    }
    if (Date.now() >= until) {
      const why = last instanceof Error ? ` (last error: ${last.message})` : ''
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.message ?? 'a condition'}${why}`)
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
