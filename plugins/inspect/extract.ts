/**
 * Request -> inspection inputs: the one extraction path shared by the plugin and the corpus
 * measurement. The URL (decoded path and query), headers (all but credentials, framing and values
 * that strictly follow their RFC grammar) and cookies are taken apart here, bodies by
 * body-parsers.ts, and every key and value is filed into a Collected (collected.ts), one list per
 * engine address (addresses.ts).
 */
import { collectBody, type ExtractLimits } from './body-parsers.js'
import { Collected, type WordScreen } from './collected.js'
import { collectForm, decode } from './values.js'

export { InspectLimitError, type InspectLimitReason } from './limit-error.js'
export { Collected, VerdictCache, type WordScreen } from './collected.js'
export { collectBody, collectMultipart, collectObject, collectXml, rawBodyLimit, type ExtractLimits } from './body-parsers.js'
export { countJsonKeys } from '../../lib/json-keys.js'
export { collectForm, decode } from './values.js'

/**
 * Headers that are never inspected: credentials the gateway verifies and never forwards, framing
 * the request guard checks (Host, Content-Length, Transfer-Encoding), hop-by-hop headers the proxy
 * drops, and the request id the gateway replaces. Every other header reaches the upstream and is
 * inspected, name and value.
 */
const SKIPPED_HEADERS = new Set([
  'authorization', 'proxy-authorization', 'x-api-key', 'cookie', 'host', 'content-length',
  'transfer-encoding', 'connection', 'keep-alive', 'te', 'upgrade', 'x-request-id'
])
/** Header names made of letters, digits, `-` and `_` carry nothing a rule could match. */
const PLAIN_HEADER_NAME = /^[a-z0-9_-]+$/

const FILENAME_HEADER = /file[-_.]?name/

/*
 * Standard headers whose value strictly follows its RFC grammar carry nothing a rule could
 * match, so they are not handed to the engine (each value costs every rule a pass). A value that
 * does not conform is inspected like any other header.
 */
const TOKEN = '[A-Za-z0-9*+._-]+'
const PARAMS = `(?:\\s*;\\s*${TOKEN}=(?:${TOKEN}|"[A-Za-z0-9 ._:/=+-]*"))*`
const MEDIA_LIST = new RegExp(`^${TOKEN}/${TOKEN}${PARAMS}(?:\\s*,\\s*${TOKEN}/${TOKEN}${PARAMS})*$`)
const LANGUAGE_LIST = /^(?:[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)(?:\s*;\s*q=[01](?:\.\d{0,3})?)?(?:\s*,\s*(?:[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)(?:\s*;\s*q=[01](?:\.\d{0,3})?)?)*$/
const DIRECTIVE_LIST = /^[A-Za-z-]+(?:=(?:\d{1,10}|"[A-Za-z0-9 ,-]*"|[A-Za-z-]+))?(?:\s*,\s*[A-Za-z-]+(?:=(?:\d{1,10}|"[A-Za-z0-9 ,-]*"|[A-Za-z-]+))?)*$/
const ETAG_LIST = /^(?:\*|(?:W\/)?"[A-Za-z0-9._:+/=-]*"(?:\s*,\s*(?:W\/)?"[A-Za-z0-9._:+/=-]*")*)$/
const FETCH_TOKEN = /^\??[A-Za-z0-9-]{1,32}$/
const HTTP_DATE = /^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/
const WEBSOCKET_KEY = /^[A-Za-z0-9+/]{22}==$/
const INERT_HEADERS = new Map<string, RegExp>([
  ['accept', MEDIA_LIST],
  ['content-type', MEDIA_LIST],
  ['accept-language', LANGUAGE_LIST],
  ['traceparent', TRACEPARENT],
  ['sec-websocket-key', WEBSOCKET_KEY],
  ['cache-control', DIRECTIVE_LIST],
  ['pragma', DIRECTIVE_LIST],
  ['if-none-match', ETAG_LIST],
  ['if-match', ETAG_LIST],
  ['if-modified-since', HTTP_DATE],
  ['if-unmodified-since', HTTP_DATE],
  ['sec-fetch-site', FETCH_TOKEN],
  ['sec-fetch-mode', FETCH_TOKEN],
  ['sec-fetch-dest', FETCH_TOKEN],
  ['sec-fetch-user', FETCH_TOKEN],
  ['sec-ch-ua-mobile', FETCH_TOKEN],
  ['dnt', FETCH_TOKEN],
  ['upgrade-insecure-requests', FETCH_TOKEN]
])

/**
 * What collectHeaders does with a header, by name, in one lookup: SKIP it, or inspect a value
 * (the name is plain) unless it matches the grammar given. Names seen with a plain spelling are
 * remembered (up to LEARNED_NAMES_MAX), so a request's usual headers cost one lookup each.
 */
const SKIP = 0
const PLAIN = 1
const HEADER_KIND = new Map<string, typeof SKIP | typeof PLAIN | RegExp>([
  ...[...SKIPPED_HEADERS].map((name) => [name, SKIP] as const),
  ...INERT_HEADERS,
  // HTTP/2 pseudo-headers: their values are inspected, their names are the protocol's.
  ...[':authority', ':method', ':path', ':scheme', ':protocol'].map((name) => [name, PLAIN] as const)
])
const LEARNED_NAMES_MAX = 1024
let learnedNames = 0

/** Decoded path (segment by segment, so an encoded `/` stays visible as a character) and query. */
export function collectUrl (c: Collected, url: string): void {
  const q = url.indexOf('?')
  const rawPath = q === -1 ? url : url.slice(0, q)
  if (rawPath.includes('%')) {
    c.add(c.path, rawPath.split('/').map((seg) => decode(seg, false)).join('/'))
  } else {
    c.add(c.path, rawPath)
  }
  if (q !== -1) collectForm(c, url.slice(q + 1), c.query)
}

/** Cookie header -> names (keys) and values, decoded. */
export function collectCookies (c: Collected, header: string): void {
  let start = 0
  while (start < header.length) {
    let end = header.indexOf(';', start)
    if (end === -1) end = header.length
    const pair = header.slice(start, end).trim()
    if (pair !== '') {
      const eq = pair.indexOf('=')
      if (eq === -1) {
        c.add(c.cookies, decode(pair, false))
      } else {
        c.addKey(decode(pair.slice(0, eq).trim(), false))
        let v = pair.slice(eq + 1).trim()
        if (v.length > 1 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1)
        c.add(c.cookies, decode(v, false))
      }
    }
    start = end + 1
  }
}

/** Header names and values (all but SKIPPED_HEADERS) and cookies. */
export function collectHeaders (c: Collected, headers: Record<string, string | string[] | undefined>): void {
  for (const name in headers) {
    const v = headers[name]
    if (v === undefined) continue
    if (name === 'cookie') {
      collectCookies(c, Array.isArray(v) ? v.join('; ') : v)
      continue
    }
    const kind = HEADER_KIND.get(name)
    if (kind === SKIP) continue
    if (kind === undefined) {
      if (PLAIN_HEADER_NAME.test(name)) {
        if (learnedNames < LEARNED_NAMES_MAX) {
          HEADER_KIND.set(name, PLAIN)
          learnedNames++
        }
      } else {
        // Token characters beyond these (`'`, `|`, `$`, `` ` ``, ...) are allowed in a field name.
        c.addKey(name)
      }
    } else if (kind !== PLAIN && typeof v === 'string' && v.length <= 512 && kind.test(v)) {
      continue
    }
    // Upload conventions (x-filename, x-file-name) name a file the server may store.
    if (FILENAME_HEADER.test(name)) c.add(c.files, Array.isArray(v) ? v.join(',') : v)
    if (Array.isArray(v)) {
      for (const item of v) c.add(c.headers, item)
    } else {
      c.add(c.headers, v)
    }
  }
}

/** A whole request (used by the corpus measurement and tests): URL, headers and body. */
export interface RequestLike {
  readonly url: string
  readonly headers: Record<string, string | string[] | undefined>
  readonly body?: unknown
}

/** Collects every input of a request in one go (the plugin splits this over two hooks). */
export function collectRequest (req: RequestLike, limits: ExtractLimits, withBody: boolean, screen?: WordScreen): Collected {
  const c = new Collected(limits.maxInspectBytes, undefined, screen)
  collectUrl(c, req.url)
  collectHeaders(c, req.headers)
  if (withBody) {
    const ct = req.headers['content-type']
    collectBody(c, req.body, Array.isArray(ct) ? ct[0] : ct, limits)
  }
  return c
}
