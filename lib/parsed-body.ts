/**
 * A JSON request body parsed once for every plugin that reads it. The inspection plugin parses a
 * buffered JSON body (secure-json-parse: prototype keys refused; duplicate keys refused after) and
 * remembers the value against the very Buffer it read, when it read those bytes as UTF-8; the API
 * contract plugin, which reads the same bytes the same way, takes that value instead of parsing
 * them again. Keyed by the Buffer itself (a WeakMap, so nothing outlives the request): a body
 * decoded from a Content-Encoding, or read in another charset, is another Buffer or no Buffer at
 * all, and is never matched. A reader must not change the value (the contract's JSON validators
 * neither coerce nor fill defaults).
 */
const parsedBodies = new WeakMap<Buffer, { readonly value: unknown }>()

/** Remembers `value` as the JSON value of the UTF-8 bytes `body`. */
export function rememberJsonBody (body: Buffer, value: unknown): void {
  parsedBodies.set(body, { value })
}

/** The JSON value already parsed from `body`, or undefined when no plugin parsed it. */
export function rememberedJsonBody (body: Buffer): { readonly value: unknown } | undefined {
  return parsedBodies.get(body)
}
