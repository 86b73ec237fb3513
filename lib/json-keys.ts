/**
 * Duplicate keys in a JSON text. JSON.parse keeps one member per key (the last of equal keys,
 * compared after unescaping, at any depth); other parsers keep the first, or refuse. A plugin that
 * judges the parsed value (inspection, the API contract) would judge a value the backend never
 * reads, so a text whose parsed value has fewer members than it writes is refused.
 */

/**
 * The number of object members written in a JSON text: the strings followed by `:`. `text` is
 * valid JSON (it parsed), so every string is closed.
 */
export function countJsonKeys (text: string): number {
  let count = 0
  let i = text.indexOf('"')
  while (i !== -1) {
    let end = text.indexOf('"', i + 1)
    for (;;) {
      let k = end - 1
      while (text.charCodeAt(k) === 92) k--
      if ((end - 1 - k) % 2 === 0) break
      end = text.indexOf('"', end + 1)
    }
    let next = end + 1
    let ch = text.charCodeAt(next)
    while (ch === 32 || ch === 10 || ch === 13 || ch === 9) ch = text.charCodeAt(++next)
    if (ch === 58) count++
    i = text.indexOf('"', next)
  }
  return count
}

/** The number of object members in a parsed JSON value, at any depth (no recursion: any depth JSON.parse reads). */
export function countJsonMembers (value: unknown): number {
  let n = 0
  const pending: unknown[] = [value]
  while (pending.length > 0) {
    const v = pending.pop()
    if (typeof v !== 'object' || v === null) continue
    if (Array.isArray(v)) {
      for (const item of v) if (typeof item === 'object' && item !== null) pending.push(item)
      continue
    }
    for (const key in v) {
      n++
      const child = (v as Record<string, unknown>)[key]
      if (typeof child === 'object' && child !== null) pending.push(child)
    }
  }
  return n
}

/** Whether a JSON text writes a key twice in one object (`value` is what it parsed to). */
export function hasDuplicateKeys (text: string, value: unknown): boolean {
  return countJsonMembers(value) !== countJsonKeys(text)
}
