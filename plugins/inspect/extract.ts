/**
 * Request -> inspection inputs: the one extraction path shared by the plugin and the corpus
 * measurement. Every input ends up as a flat list of strings per engine address, so the engine's
 * container limits (256 items, ~20 levels) can never hide a value: lists are packed into a tree
 * of at most 256 items per level, and strings over CHUNK_CHARS are split into overlapping pieces
 * (the engine reads 4,096 bytes of a string). A per-request byte budget bounds the work; past it
 * the request is refused (`InspectLimitError` reason `size`) instead of being half inspected.
 */
import sjson from 'secure-json-parse'
import { TEXT_WORD } from './text-words.js'
import { allowedCharset, bodyText, charsetOf } from './decode.js'
import { InspectLimitError } from './limit-error.js'

/** Engine addresses the ruleset reads. */
export const ADDRESS = Object.freeze({
  path: 'server.request.uri.path',
  query: 'server.request.query',
  headers: 'server.request.headers.no_cookies',
  cookies: 'server.request.cookies',
  body: 'server.request.body',
  keys: 'portcullis.request.keys',
  files: 'server.request.body.filenames',
  /** Long free text from bodies (prose, comments): every rule but libinjection's SQL fingerprinting reads it. */
  text: 'portcullis.request.body.text',
  /** Keys that are plain identifiers: read only by the few rules that can match a bare word. */
  words: 'portcullis.request.keys.plain',
  /** Query, cookie and body values that are bare words (same reading as plain keys). */
  queryWords: 'portcullis.request.query.plain',
  cookieWords: 'portcullis.request.cookies.plain',
  bodyWords: 'portcullis.request.body.plain',
  /**
   * Keys and values that are text words (letters, digits, spaces, `_ - . , : @`, not bare words):
   * read only by the rules that can match one (text-words.ts decides which, at load).
   */
  keyText: 'portcullis.request.keys.text_words',
  queryText: 'portcullis.request.query.text_words',
  cookieText: 'portcullis.request.cookies.text_words',
  bodyText: 'portcullis.request.body.text_words',
  /**
   * Text words the JavaScript screen cleared of every rule it can read (engine.ts): read only by
   * the rules it cannot (libinjection's is_sqli among them).
   */
  keyTextScreened: 'portcullis.request.keys.text_words.screened',
  queryTextScreened: 'portcullis.request.query.text_words.screened',
  cookieTextScreened: 'portcullis.request.cookies.text_words.screened',
  bodyTextScreened: 'portcullis.request.body.text_words.screened'
})

/**
 * Each standard address and the address its bare-word values go to. An operator ruleset reading
 * the standard address is given both (engine.ts), so operator rules see every value.
 */
export const PLAIN_COUNTERPART: Readonly<Record<string, string>> = Object.freeze({
  [ADDRESS.keys]: ADDRESS.words,
  [ADDRESS.query]: ADDRESS.queryWords,
  [ADDRESS.cookies]: ADDRESS.cookieWords,
  [ADDRESS.body]: ADDRESS.bodyWords
})

/**
 * Each standard address and the address its text-word values go to. Every rule reading the
 * standard address that could match a text word is given it (engine.ts), built-in or operator.
 */
export const TEXT_COUNTERPART: Readonly<Record<string, string>> = Object.freeze({
  [ADDRESS.keys]: ADDRESS.keyText,
  [ADDRESS.query]: ADDRESS.queryText,
  [ADDRESS.cookies]: ADDRESS.cookieText,
  [ADDRESS.body]: ADDRESS.bodyText
})

/**
 * Each text-word address and the address its screened values go to. Every rule reading a
 * text-word address that the screen cannot decide in JavaScript is given it (engine.ts).
 */
export const SCREENED_COUNTERPART: Readonly<Record<string, string>> = Object.freeze({
  [ADDRESS.keyText]: ADDRESS.keyTextScreened,
  [ADDRESS.queryText]: ADDRESS.queryTextScreened,
  [ADDRESS.cookieText]: ADDRESS.cookieTextScreened,
  [ADDRESS.bodyText]: ADDRESS.bodyTextScreened
})

/** Bounds applied while extracting. */
export interface ExtractLimits {
  /** Total characters of strings handed to the engine for one request phase. */
  readonly maxInspectBytes: number
  /** Nesting depth of a JSON body (or a parsed body object). */
  readonly maxBodyDepth: number
  /** Keys (object members and array items) in a body. */
  readonly maxBodyKeys: number
}

export { InspectLimitError, type InspectLimitReason } from './limit-error.js'

/** Strings longer than this are split (1,360 UTF-16 units stay under 4,096 UTF-8 bytes). */
const CHUNK_CHARS = 1360
/** Overlap between pieces, so a pattern shorter than this is never cut in two. */
const CHUNK_OVERLAP = 256
/** Values up to this length are added once per list (JSON arrays repeat their keys). */
const DEDUPE_MAX_CHARS = 256
/** Lists shorter than this are scanned for repeats instead of hashed. */
const DEDUPE_SCAN_MAX = 16
const MAX_LIST = 256
/** A raw body may carry this many times the text budget in syntax (JSON punctuation, numbers, tags). */
const RAW_FACTOR = 4

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

const PLAIN_KEY = /^[A-Za-z0-9_-]+$/
const PROSE_MIN_CHARS = 64
const PROSE_MIN_SPACES = 6
/** Free text: long, with several words. libinjection (made for short parameter values) misreads it. */
function isProse (value: string): boolean {
  if (value.length < PROSE_MIN_CHARS) return false
  let spaces = 0
  for (let i = 0; i < value.length && spaces < PROSE_MIN_SPACES; i++) if (value.charCodeAt(i) === 32) spaces++
  return spaces >= PROSE_MIN_SPACES
}

/** Collected inputs of one request phase, per address. */
/** Longest value whose clean verdict is remembered. */
const CACHE_MAX_CHARS = 256
/** Number of value lists (addresses) the verdict cache keeps: a screened value is kept as a text word. */
const LIST_COUNT = 16
/** Number of value lists (addresses) a Collected holds: the cached ones, then the four screened lists. */
const ALL_LISTS = 20
/** List number of a text-word list's screened counterpart, over the text-word list's own. */
export const SCREENED_OFFSET = 4

/**
 * Values the engine judged clean, per address, so a repeated benign value (a path, a header, an
 * enum in a query) is not evaluated again. Sound only when every rule reads one address with one
 * condition and no key path, so a value's verdict depends on nothing but the value and its address
 * (InspectEngine.cacheable). Only values of evaluations with no match and no timeout are stored, so
 * a value that matches any rule is never remembered. Two generations bound the memory: when the
 * young one holds `capacity` values it becomes the old one and the previous old one is dropped.
 */
export class VerdictCache {
  private young: Array<Set<string>> = VerdictCache.sets()
  private old: Array<Set<string>> = VerdictCache.sets()
  private size = 0

  constructor (private readonly capacity: number) {}

  private static sets (): Array<Set<string>> {
    return Array.from({ length: LIST_COUNT }, () => new Set<string>())
  }

  has (list: number, value: string): boolean {
    if ((this.young[list] as Set<string>).has(value)) return true
    if (!(this.old[list] as Set<string>).has(value)) return false
    this.put(list, value)
    return true
  }

  put (list: number, value: string): void {
    const set = this.young[list] as Set<string>
    if (set.has(value)) return
    set.add(value)
    if (++this.size >= this.capacity) {
      this.old = this.young
      this.young = VerdictCache.sets()
      this.size = 0
    }
  }
}

/** List numbers (Collected's fixed order) of the four bare-word lists. */
export const WORD_LISTS: Readonly<Record<string, number>> = Object.freeze({
  [ADDRESS.words]: 8,
  [ADDRESS.queryWords]: 9,
  [ADDRESS.cookieWords]: 10,
  [ADDRESS.bodyWords]: 11
})

/** List numbers of the four text-word lists, and of their screened counterparts. */
export const TEXT_LISTS: Readonly<Record<string, number>> = Object.freeze({
  [ADDRESS.keyText]: 12,
  [ADDRESS.queryText]: 13,
  [ADDRESS.cookieText]: 14,
  [ADDRESS.bodyText]: 15
})
export const SCREENED_LISTS: Readonly<Record<string, number>> = Object.freeze({
  [ADDRESS.keyTextScreened]: 16,
  [ADDRESS.queryTextScreened]: 17,
  [ADDRESS.cookieTextScreened]: 18,
  [ADDRESS.bodyTextScreened]: 19
})

/**
 * Decides, per bare-word and text-word list, whether any loaded rule the screen reads in
 * JavaScript could match a value (engine.ts).
 */
export interface WordScreen {
  /** False only when no such rule reading list `list` can match `word`. */
  relevant: (list: number, word: string) => boolean
  /**
   * For a text-word list: whether some rule the screen cannot read takes its screened values
   * (they then go to the screened list; otherwise a value `relevant` clears is clean).
   */
  residual: (list: number) => boolean
}

export class Collected {
  path: string[] = []
  query: string[] = []
  headers: string[] = []
  cookies: string[] = []
  body: string[] = []
  keys: string[] = []
  files: string[] = []
  text: string[] = []
  words: string[] = []
  queryWords: string[] = []
  cookieWords: string[] = []
  bodyWords: string[] = []
  keyText: string[] = []
  queryText: string[] = []
  cookieText: string[] = []
  bodyText: string[] = []
  keyTextScreened: string[] = []
  queryTextScreened: string[] = []
  cookieTextScreened: string[] = []
  bodyTextScreened: string[] = []
  private chars = 0
  private readonly budget: number
  /** Sets of the short values of long lists, made only when a list grows past DEDUPE_SCAN_MAX. */
  private seen: Map<string[], Set<string>> | undefined

  private readonly cache: VerdictCache | undefined
  /** The lists in a fixed order (the cache's list numbers). */
  private readonly lists: string[][] = [this.path, this.query, this.headers, this.cookies, this.body, this.keys, this.files, this.text, this.words, this.queryWords, this.cookieWords, this.bodyWords,
    this.keyText, this.queryText, this.cookieText, this.bodyText, this.keyTextScreened, this.queryTextScreened, this.cookieTextScreened, this.bodyTextScreened]

  private readonly screen: WordScreen | undefined

  constructor (budget: number, cache?: VerdictCache, screen?: WordScreen) {
    this.budget = budget
    this.cache = cache
    this.screen = screen
  }

  /** Remembers every value of this (clean) evaluation in the cache it was collected with. */
  rememberClean (): void {
    const cache = this.cache
    if (cache === undefined) return
    for (let i = 0; i < ALL_LISTS; i++) {
      const list = this.lists[i] as string[]
      // A screened value is clean for every rule reading its text-word list: the screen cleared
      // it of the rules it reads, the engine of the others.
      const n = i < LIST_COUNT ? i : i - SCREENED_OFFSET
      for (const value of list) if (value.length <= CACHE_MAX_CHARS) cache.put(n, value)
    }
  }

  add (list: string[], value: string): void {
    if (value === '') return
    // A parameter value that is a bare word (ids, numbers, enum values: most of them) is read only
    // by the rules that can match a bare word, like plain keys: no decoding transformer changes it.
    // Other text words (names, search terms, dates) are read only by the rules that can match one.
    if (list === this.query || list === this.cookies || list === this.body) {
      if (value.length <= 64 && PLAIN_KEY.test(value)) {
        list = list === this.query ? this.queryWords : list === this.cookies ? this.cookieWords : this.bodyWords
      } else if (TEXT_WORD.test(value)) {
        list = list === this.query ? this.queryText : list === this.cookies ? this.cookieText : this.bodyText
      }
    }
    this.chars += value.length
    if (this.chars > this.budget) throw new InspectLimitError('size')
    if (this.cache === undefined && this.screen === undefined) {
      this.push(list, value)
      return
    }
    const n = this.lists.indexOf(list)
    const cacheable = this.cache !== undefined && value.length <= CACHE_MAX_CHARS
    if (cacheable && (this.cache as VerdictCache).has(n, value)) return
    // A bare word that no rule reading its list could match (most ids, numbers and enum values)
    // needs no engine run at all (and is clean: remembered like a judged value). A text word
    // (unsplit) that no rule the screen reads could match goes to the rules it cannot read.
    const screen = this.screen
    if (n >= 8 && n < LIST_COUNT && screen !== undefined && (n < 12 || value.length <= CHUNK_CHARS) && !screen.relevant(n, value)) {
      if (n >= 12 && screen.residual(n)) {
        this.push(this.lists[n + SCREENED_OFFSET] as string[], value)
        return
      }
      if (cacheable) (this.cache as VerdictCache).put(n, value)
      return
    }
    this.push(list, value)
  }

  private push (list: string[], value: string): void {
    if (value.length <= DEDUPE_MAX_CHARS && this.repeated(list, value)) return
    if (value.length <= CHUNK_CHARS) {
      list.push(value)
      return
    }
    const step = CHUNK_CHARS - CHUNK_OVERLAP
    for (let i = 0; i < value.length; i += step) {
      list.push(value.slice(i, i + CHUNK_CHARS))
      if (i + CHUNK_CHARS >= value.length) break
    }
  }

  /**
   * Whether a short value is already in the list (a repeated key or value judges the same).
   * Small lists (most requests) are scanned, with no allocation; a Set is made for long ones.
   */
  private repeated (list: string[], value: string): boolean {
    if (list.length < DEDUPE_SCAN_MAX) return list.includes(value)
    this.seen ??= new Map()
    let set = this.seen.get(list)
    if (set === undefined) {
      set = new Set(list)
      this.seen.set(list, set)
    }
    if (set.has(value)) return true
    set.add(value)
    return false
  }

  /** A body value: long prose goes to `text`, everything else to `body`. */
  addBody (value: string): void {
    this.add(isProse(value) ? this.text : this.body, value)
  }

  /** A key or field name: plain identifiers go to `words`, other text words to `keyText`, anything else to `keys`. */
  addKey (key: string): void {
    this.add(key.length <= 64 && PLAIN_KEY.test(key) ? this.words : TEXT_WORD.test(key) ? this.keyText : this.keys, key)
  }

  /** Characters collected (every value added, judged or not): what an engine run over them costs. */
  get size (): number {
    return this.chars
  }

  get empty (): boolean {
    return this.path.length + this.query.length + this.headers.length + this.cookies.length + this.body.length + this.keys.length + this.files.length + this.text.length + this.words.length +
      this.queryWords.length + this.cookieWords.length + this.bodyWords.length +
      this.keyText.length + this.queryText.length + this.cookieText.length + this.bodyText.length + this.screenedCount() === 0
  }

  private screenedCount (): number {
    return this.keyTextScreened.length + this.queryTextScreened.length + this.cookieTextScreened.length + this.bodyTextScreened.length
  }

  /** Whether every value collected went to a screened list (the engine's small ruleset judges them). */
  get onlyScreened (): boolean {
    for (let i = 0; i < LIST_COUNT; i++) if ((this.lists[i] as string[]).length > 0) return false
    return this.screenedCount() > 0
  }

  /** The engine payload: each non-empty list, packed to the engine's container limits. */
  payload (): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (let i = 0; i < ALL_LISTS; i++) {
      const list = this.lists[i] as string[]
      if (list.length > 0) out[LIST_ADDRESSES[i] as string] = pack(list)
    }
    return out
  }

  /** Appends every value to `joint`'s list of its address (one engine run over several phases). */
  appendTo (joint: Record<string, string[]>): void {
    for (let i = 0; i < ALL_LISTS; i++) {
      const list = this.lists[i] as string[]
      if (list.length === 0) continue
      const address = LIST_ADDRESSES[i] as string
      const values = joint[address]
      if (values === undefined) joint[address] = list.slice()
      else for (let k = 0; k < list.length; k++) values.push(list[k] as string)
    }
  }
}

/** The engine address of each of Collected's lists, in its fixed order. */
const LIST_ADDRESSES: readonly string[] = [
  ADDRESS.path, ADDRESS.query, ADDRESS.headers, ADDRESS.cookies, ADDRESS.body, ADDRESS.keys, ADDRESS.files, ADDRESS.text, ADDRESS.words,
  ADDRESS.queryWords, ADDRESS.cookieWords, ADDRESS.bodyWords, ADDRESS.keyText, ADDRESS.queryText, ADDRESS.cookieText, ADDRESS.bodyText,
  ADDRESS.keyTextScreened, ADDRESS.queryTextScreened, ADDRESS.cookieTextScreened, ADDRESS.bodyTextScreened
]

/** Packs `joint`'s lists (appendTo) to the engine's container limits. */
export function packJoint (joint: Record<string, string[]>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const address in joint) out[address] = pack(joint[address] as string[])
  return out
}

/** A list of any length as nested lists of at most 256 items (depth log256(n)). */
function pack (list: string[]): unknown[] {
  let level: unknown[] = list
  while (level.length > MAX_LIST) {
    const next: unknown[] = []
    for (let i = 0; i < level.length; i += MAX_LIST) next.push(level.slice(i, i + MAX_LIST))
    level = next
  }
  return level
}

const PERCENT = /%/
/** Percent-decoding; `plus` turns `+` into a space (forms, query strings). Undecodable stays raw. */
export function decode (s: string, plus: boolean): string {
  const t = plus && s.includes('+') ? s.replaceAll('+', ' ') : s
  if (!PERCENT.test(t)) return t
  try {
    return decodeURIComponent(t)
  } catch {
    // Invalid UTF-8 (overlong `%c0%af` and friends): keep the raw text so rules see the trick.
    return t
  }
}

/**
 * OAuth 2.0 / OpenID Connect (and sign-in library) parameters that name where the browser is sent back to. A native app
 * listens on a loopback address (RFC 8252 7.3), so `http://localhost:3000/callback` there is an
 * ordinary value, not a request for the backend to fetch an internal URL.
 */
const REDIRECT_KEYS: ReadonlySet<string> = new Set([
  'redirect_uri', 'redirect_uris', 'post_logout_redirect_uri', 'oauth_callback',
  // sign-in libraries' own callback parameters (NextAuth.js `callbackUrl`, Rails/Devise `return_to`)
  'callbackUrl', 'callback_url', 'returnTo', 'return_to', 'redirect_url', 'redirectUrl'
])
/** A loopback redirect URI with a plain path (no query, no dot segments, no escapes): nothing a rule could match. */
const LOOPBACK_REDIRECT = /^https?:\/\/(?:localhost|127\.0\.0\.1|\[::1\])(?::\d{1,5})?(?:\/(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,63})?){0,16}$/

function isLoopbackRedirect (key: string, value: string): boolean {
  return REDIRECT_KEYS.has(key) && LOOPBACK_REDIRECT.test(value)
}

/**
 * An absolute URL ending in `?`: in a form or query parameter, the remote file inclusion trick of
 * cutting off the suffix an application appends (pc-rfi-002). In a JSON document it is plain data
 * (GitHub's webhook payloads carry avatar URLs ending in `?`): the URL is judged without its
 * trailing `?`, by every other rule.
 */
const URL_TRAILING_QUERY = /^\s*(?:https?|ftps?):\/\/[^\s]*?\?+$/i

/** `a=1&b=2` into keys and values (query strings and urlencoded bodies). */
export function collectForm (c: Collected, text: string, values: string[]): void {
  if (text === '') return
  let start = 0
  while (start <= text.length) {
    let end = text.indexOf('&', start)
    if (end === -1) end = text.length
    if (end > start) {
      const pair = text.slice(start, end)
      const eq = pair.indexOf('=')
      if (eq === -1) {
        c.addKey(decode(pair, true))
      } else {
        const key = decode(pair.slice(0, eq), true)
        c.addKey(key)
        const v = decode(pair.slice(eq + 1), true)
        if (isLoopbackRedirect(key, v)) {
          // judged inert (see REDIRECT_KEYS)
        } else if (values === c.body) {
          // HTML forms name their charset in a `_charset_` field, and some servers decode the rest with it.
          if (key === '_charset_') allowedCharset(v, false)
          c.addBody(v)
        } else {
          c.add(values, v)
        }
      }
    }
    start = end + 1
  }
}

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

/**
 * The number of object members written in a JSON text: the strings followed by `:`. `text` is
 * valid JSON (it parsed), so every string is closed. JSON.parse keeps one member per key (the last
 * of equal keys, compared after unescaping, at any depth), so fewer members in the parsed value
 * than here means a key was written twice, where other parsers keep the first: inspection would
 * judge a value the backend never reads.
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

/**
 * Walks a parsed body: keys and string/number leaves, with depth and key-count limits. `json`: the
 * object came from a JSON document (see URL_TRAILING_QUERY). Returns the number of object members.
 */
export function collectObject (c: Collected, value: unknown, limits: ExtractLimits, json = false): number {
  let keys = 0
  let members = 0
  const walk = (v: unknown, depth: number, key: string): void => {
    if (typeof v === 'string') {
      if (isLoopbackRedirect(key, v)) return
      c.addBody(json && v.endsWith('?') && URL_TRAILING_QUERY.test(v) ? v.replace(/\?+$/, '') : v)
      return
    }
    if (typeof v !== 'object' || v === null) return
    if (depth >= limits.maxBodyDepth) throw new InspectLimitError('depth')
    if (Array.isArray(v)) {
      keys += v.length
      if (keys > limits.maxBodyKeys) throw new InspectLimitError('keys')
      for (const item of v) walk(item, depth + 1, key)
      return
    }
    for (const k in v) {
      if (!Object.hasOwn(v, k)) continue
      members++
      if (++keys > limits.maxBodyKeys) throw new InspectLimitError('keys')
      const child = (v as Record<string, unknown>)[k]
      if (k === '__proto__' || (k === 'constructor' && typeof child === 'object' && child !== null && Object.hasOwn(child, 'prototype'))) {
        throw new InspectLimitError('poison')
      }
      c.addKey(k)
      walk(child, depth + 1, k)
    }
  }
  walk(value, 0, '')
  return members
}

const XML_ENTITY = /&(?:#x([0-9a-fA-F]{1,6})|#([0-9]{1,7})|(lt|gt|amp|quot|apos));/g
const NAMED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: '\'' }
function xmlEntities (s: string): string {
  if (!s.includes('&')) return s
  return s.replace(XML_ENTITY, (m, hex: string | undefined, dec: string | undefined, name: string | undefined) => {
    const cp = hex !== undefined ? parseInt(hex, 16) : dec !== undefined ? parseInt(dec, 10) : -1
    if (cp >= 0) return cp <= 0x10ffff ? String.fromCodePoint(cp) : m
    return NAMED[name as string] ?? m
  })
}

const XML_ATTR = /([^\s=/]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g

/** XML: text, CDATA, attribute values, declarations (DOCTYPE/ENTITY) as values; names as keys. Linear scan. */
export function collectXml (c: Collected, text: string): void {
  let i = 0
  const n = text.length
  while (i < n) {
    const lt = text.indexOf('<', i)
    const end = lt === -1 ? n : lt
    if (end > i) {
      const t = text.slice(i, end).trim()
      if (t !== '') c.addBody(xmlEntities(t))
    }
    if (lt === -1) break
    if (text.startsWith('<!--', lt)) {
      const close = text.indexOf('-->', lt + 4)
      c.add(c.body, text.slice(lt + 4, close === -1 ? n : close))
      i = close === -1 ? n : close + 3
    } else if (text.startsWith('<![CDATA[', lt)) {
      const close = text.indexOf(']]>', lt + 9)
      c.addBody(text.slice(lt + 9, close === -1 ? n : close))
      i = close === -1 ? n : close + 3
    } else if (text.startsWith('<?', lt)) {
      const close = text.indexOf('?>', lt + 2)
      const pi = text.slice(lt + 2, close === -1 ? n : close)
      // Kept with its delimiters: `<?php ...?>` inside XML is still PHP code.
      if (!pi.startsWith('xml ') && pi !== 'xml') c.add(c.body, `<?${pi}?>`)
      i = close === -1 ? n : close + 2
    } else if (text.startsWith('<!', lt)) {
      // DOCTYPE / ENTITY declarations (XXE) are judged as written, internal subset included.
      const bracket = text.indexOf('[', lt)
      const gt = text.indexOf('>', lt)
      let close = gt
      if (bracket !== -1 && (gt === -1 || bracket < gt)) {
        const sub = text.indexOf(']>', bracket)
        close = sub === -1 ? -1 : sub + 1
      }
      c.add(c.body, text.slice(lt + 2, close === -1 ? n : close))
      i = close === -1 ? n : close + 1
    } else {
      const gt = text.indexOf('>', lt + 1)
      const tag = text.slice(lt + 1, gt === -1 ? n : gt)
      let nameEnd = 0
      while (nameEnd < tag.length && !/[\s/>]/.test(tag[nameEnd] as string)) nameEnd++
      const name = tag.slice(tag.startsWith('/') ? 1 : 0, nameEnd || undefined)
      if (name !== '' && !tag.startsWith('/')) c.addKey(name)
      if (!tag.startsWith('/')) {
        const rest = tag.slice(nameEnd)
        XML_ATTR.lastIndex = 0
        let m: RegExpExecArray | null
        while ((m = XML_ATTR.exec(rest)) !== null) {
          c.addKey(m[1] as string)
          c.addBody(xmlEntities(m[2] ?? m[3] ?? ''))
        }
      }
      i = gt === -1 ? n : gt + 1
    }
  }
}

const BOUNDARY = /boundary=(?:"([^"]{1,200})"|([^\s;]{1,200}))/i
const DISPOSITION_NAME = /\bname="([^"]*)"/i
const DISPOSITION_FILE = /\bfilename\*?="?([^";\r\n]*)"?/i

const PART_TYPE = /content-type:\s*([^\r\n]+)/i
const PART_CODING = /content-(?:transfer-)?encoding:\s*([^\r\n]*)/i
const IDENTITY_PART_CODING = /^(?:7bit|8bit|binary|identity)?$/i

/** multipart/form-data: field names (keys), file names and field values parsed by their own type. */
export function collectMultipart (c: Collected, text: string, contentType: string, limits: ExtractLimits): void {
  const m = BOUNDARY.exec(contentType)
  const boundary = m?.[1] ?? m?.[2]
  if (boundary === undefined) {
    c.add(c.body, text)
    return
  }
  const delimiter = '--' + boundary
  let pos = text.indexOf(delimiter)
  if (pos === -1) {
    c.add(c.body, text)
    return
  }
  while (pos !== -1) {
    const start = pos + delimiter.length
    if (text.startsWith('--', start)) break
    const next = text.indexOf(delimiter, start)
    const part = text.slice(start, next === -1 ? text.length : next)
    const sep = part.indexOf('\r\n\r\n') !== -1 ? part.indexOf('\r\n\r\n') : part.indexOf('\n\n')
    const head = sep === -1 ? part : part.slice(0, sep)
    let content = sep === -1 ? '' : part.slice(sep + (part.startsWith('\r\n\r\n', sep) ? 4 : 2))
    if (content.endsWith('\r\n')) content = content.slice(0, -2)
    else if (content.endsWith('\n')) content = content.slice(0, -1)
    const name = DISPOSITION_NAME.exec(head)?.[1]
    const file = DISPOSITION_FILE.exec(head)?.[1]
    if (name !== undefined) c.addKey(name)
    if (file !== undefined) {
      c.add(c.files, file)
      c.add(c.body, file)
    }
    // A part's own coding (base64, quoted-printable, gzip) would hide its content from inspection.
    const transfer = PART_CODING.exec(head)?.[1]
    if (transfer !== undefined && !IDENTITY_PART_CODING.test(transfer.trim())) throw new InspectLimitError('encoding')
    const partType = PART_TYPE.exec(head)?.[1] ?? 'text/plain'
    if (partType.includes(';')) charsetOf(partType, isJson(mediaType(partType)))
    if (name === '_charset_') allowedCharset(content, false)
    collectText(c, content, partType, limits, true)
    pos = next
  }
}

function mediaType (contentType: string): string {
  const semi = contentType.indexOf(';')
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
}

function isJson (type: string): boolean {
  return type === 'application/json' || type.endsWith('+json')
}

function isXml (type: string): boolean {
  return type === 'application/xml' || type === 'text/xml' || type.endsWith('+xml')
}

function collectText (c: Collected, text: string, contentType: string, limits: ExtractLimits, nested: boolean): void {
  const type = mediaType(contentType)
  if (isJson(type)) {
    let parsed: unknown
    try {
      parsed = sjson.parse(text, null, { protoAction: 'error', constructorAction: 'error' })
    } catch (err) {
      if (err instanceof SyntaxError && (err.message.includes('prototype') || err.message.includes('__proto__'))) {
        throw new InspectLimitError('poison')
      }
      // Not JSON after all: judge the text as written.
      c.addBody(text)
      return
    }
    if (collectObject(c, parsed, limits, true) !== countJsonKeys(text)) throw new InspectLimitError('duplicate')
  } else if (type === 'application/x-www-form-urlencoded') {
    collectForm(c, text, c.body)
  } else if (isXml(type)) {
    collectXml(c, text)
  } else if (type === 'multipart/form-data' && !nested) {
    collectMultipart(c, text, contentType, limits)
  } else {
    c.addBody(text)
  }
}

/** Bytes of a raw body (decoded, when it was coded) that inspection parses at most. */
export function rawBodyLimit (limits: ExtractLimits): number {
  return limits.maxInspectBytes * RAW_FACTOR
}

/**
 * A body as the plugin sees it: a Buffer (proxied routes buffer raw bytes), a string, or an object
 * a host app's parser already produced.
 */
export function collectBody (c: Collected, body: unknown, contentType: string | undefined, limits: ExtractLimits): void {
  if (body === undefined || body === null) return
  if (Buffer.isBuffer(body)) {
    if (body.length === 0) return
    // Parsing is linear; a body far past the text budget cannot fit it, so refuse it unparsed.
    if (body.length > rawBodyLimit(limits)) throw new InspectLimitError('size')
    const type = contentType ?? 'text/plain'
    const json = isJson(mediaType(type))
    collectText(c, bodyText(body, charsetOf(type, json), json), type, limits, false)
  } else if (typeof body === 'string') {
    if (body.length > limits.maxInspectBytes * RAW_FACTOR) throw new InspectLimitError('size')
    collectText(c, body, contentType ?? 'text/plain', limits, false)
  } else if (typeof body === 'object') {
    collectObject(c, body, limits, contentType !== undefined && isJson(mediaType(contentType)))
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
