/**
 * The charset a request body declares, and how it is read. RFC 8259 (8.1): JSON exchanged
 * between systems is UTF-8, so a JSON body declaring any other charset is refused rather than
 * guessed: a backend that honours `charset=utf-7` or `utf-16` reads other characters, and another
 * structure, than a plugin that read the bytes as UTF-8. Text bodies (forms, XML, text) may also
 * be US-ASCII or ISO-8859-1, which are read exactly.
 */

/** How an allowed charset is read. */
export type TextDecoding = 'utf8' | 'latin1'

/** Charsets of text bodies (forms, XML, text) read exactly as declared. */
const TEXT_CHARSETS: ReadonlyMap<string, TextDecoding> = new Map<string, TextDecoding>([
  ['utf-8', 'utf8'], ['utf8', 'utf8'], ['us-ascii', 'utf8'], ['ascii', 'utf8'],
  ['iso-8859-1', 'latin1'], ['iso8859-1', 'latin1'], ['iso_8859-1', 'latin1'], ['latin1', 'latin1'], ['l1', 'latin1']
])
/** RFC 8259 8.1: JSON exchanged between systems is UTF-8. */
const JSON_CHARSETS: ReadonlyMap<string, TextDecoding> = new Map<string, TextDecoding>([['utf-8', 'utf8'], ['utf8', 'utf8']])

const CHARSET_PARAM = /(?:^|;)\s*charset\s*=\s*("[^"]*"|[^;\s]*)/gi

/**
 * The decoding of a Content-Type's charset (utf8 when none is declared); undefined for a charset
 * that is not read, an empty one, or more than one charset parameter.
 */
export function contentTypeDecoding (contentType: string, json: boolean): TextDecoding | undefined {
  if (!contentType.includes(';')) return 'utf8'
  let found: string | undefined
  CHARSET_PARAM.lastIndex = 0
  let m: RegExpExecArray | null
  while ((m = CHARSET_PARAM.exec(contentType)) !== null) {
    if (found !== undefined) return undefined
    let v = m[1] as string
    if (v.startsWith('"')) v = v.slice(1, -1)
    found = v.trim().toLowerCase()
  }
  if (found === undefined) return 'utf8'
  return charsetDecoding(found, json)
}

/** The decoding of a charset name (a `_charset_` field, a parameter); undefined when it is not read. */
export function charsetDecoding (name: string, json: boolean): TextDecoding | undefined {
  return (json ? JSON_CHARSETS : TEXT_CHARSETS).get(name.trim().toLowerCase())
}
