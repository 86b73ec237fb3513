/**
 * Bounded label values: a label keeps at most `max` distinct values, then answers `(other)`;
 * values outside a safe token alphabet become `(invalid)`. So no caller-controlled string can
 * grow the series count or inject text into the exposition.
 */
export const OTHER = '(other)'
export const INVALID = '(invalid)'
export const UNROUTED = '(unrouted)'

const TOKEN = /^[A-Za-z0-9_.:/*@-]{1,128}$/
/** Operations of an API document (`GET /pets/{id}`, `(unknown)`): the token alphabet plus space, braces and parentheses. */
export const OPERATION = /^[A-Za-z0-9_.:/*@{}() -]{1,160}$/

export class BoundedLabel {
  private readonly seen = new Set<string>()
  constructor (private readonly max: number, private readonly alphabet: RegExp = TOKEN) {}

  value (raw: unknown): string {
    if (typeof raw !== 'string' || !this.alphabet.test(raw)) return INVALID
    if (this.seen.has(raw)) return raw
    if (this.seen.size >= this.max) return OTHER
    this.seen.add(raw)
    return raw
  }
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])

/** The method label: one of the usual methods, else `OTHER`. */
export function methodLabel (method: string): string {
  return METHODS.has(method) ? method : 'OTHER'
}
