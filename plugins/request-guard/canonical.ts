/**
 * How a lenient backend reads a request path: the union of the rewrites common servers apply
 * before they match a path against their own routes. The gateway routes the literal path; the
 * request guard compares that route with the route of this reading (see route-table.ts).
 *
 * Each rewrite is applied per segment, after percent-decoding (the path has passed BAD_PATH, so
 * no encoded `/`, `\`, `.`, controls or unreserved characters are left to decode; what a second
 * decoding or IIS `%uXXXX` would still produce is decoded too):
 * - `+` read as a space (form decoding applied to paths by some frameworks);
 * - everything from a decoded `?` or `#` on is dropped, with the rest of the path (Apache
 *   mod_rewrite/mod_proxy CVE-2023-25690, CVE-2024-38474; backends that re-parse a decoded path);
 * - Unicode compatibility forms folded (NFKC: fullwidth letters, ligatures, `‥` -> `..`), the
 *   Windows "best fit" look-alikes mapped (U+2044 `⁄` -> `/`, `¥`/`₩` -> `\`, `ł` -> `l`, ...),
 *   letter case folded (IIS/ASP.NET and NTFS, Express' default `caseSensitive: false`, Spring
 *   with a case-insensitive PathMatcher; Java's `equalsIgnoreCase` also equates `ı`/`İ` with `i`),
 *   diacritics and default-ignorable characters (zero-width space, soft hyphen) removed;
 * - a look-alike `/` or `\` that appears that way splits the segment (IIS reads both as separators);
 * - `;` and what follows it removed (path parameters: Tomcat, Jetty and Spring's UrlPathHelper
 *   strip `;jsessionid=...` and a bare `;`, from any segment), encoded `%3B` included;
 * - NTFS alternate data streams removed (`admin::$DATA`, `admin:$I30:$INDEX_ALLOCATION`);
 * - leading and trailing whitespace removed (Spring's AntPathMatcher `trimTokens`, CVE-2016-5007;
 *   Node/Express and Flask trim `\xA0` and `\x85`), and trailing dots (Windows drops
 *   trailing dots and spaces of a file name);
 * - empty segments dropped (`//`, a trailing `/`: Tomcat and Spring merge slashes, Spring < 6 and
 *   Express' non-strict routing read `/admin/` as `/admin`).
 *
 * Two more readings are not a rewrite of the segment but alternatives tried by the route table:
 * Spring's suffix pattern match (`/admin.json` served by `/admin`, Spring < 5.3 by default) and
 * 8.3 short names (`ADMINI~1` is `administration` on NTFS).
 *
 * A segment that reads as `.` or `..` (or only dots) is a traversal in disguise (`..%20`,
 * `.%3Bx`, `%E2%80%A5`): `readPath` refuses the path outright.
 */

/** Returned by `readPath` for a path no backend reads unambiguously (a disguised dot segment): refuse it. */
export const AMBIGUOUS: unique symbol = Symbol('ambiguous path')

/**
 * Windows best-fit mappings (WideCharToMultiByte without WC_NO_BEST_FIT_CHARS, code pages 1252,
 * 932 and 949) of characters that NFKC and diacritic removal leave alone.
 */
const BEST_FIT: ReadonlyMap<string, string> = new Map([
  ['\u2044', '/'], // fraction slash
  ['\u2215', '/'], // division slash
  ['\u00a5', '\\'], // yen sign (cp932)
  ['\u20a9', '\\'], // won sign (cp949)
  ['\u3002', '.'], // ideographic full stop
  ['\u2010', '-'],
  ['\u2011', '-'],
  ['\u2212', '-'],
  ['\u2500', '-'],
  ['\u2550', '-'],
  ['\u01c3', '!'],
  ['\u02b9', '\''],
  ['\u02bc', '\''],
  ['\u02c8', '\''],
  ['\u2032', '\''],
  ['\u2217', '*'],
  ['\u221e', '8'],
  ['\u0111', 'd'], // đ
  ['\u0127', 'h'], // ħ
  ['\u0131', 'i'], // dotless i
  ['\u0142', 'l'], // ł
  ['\u0167', 't'], // ŧ
  ['\u00f8', 'o'], // ø
  ['\u0180', 'b'], // ƀ
  ['\u019a', 'l'], // ƚ
  ['\u0268', 'i'], // ɨ
  ['\u03b1', 'a'], // α
  ['\u03b4', 'd'], // δ
  ['\u03b5', 'e'], // ε
  ['\u03c0', 'p'], // π
  ['\u03c3', 's'], // σ
  ['\u03c2', 's'], // ς
  ['\u03c4', 't'], // τ
  ['\u03c6', 'f'] // φ
])
const BEST_FIT_CHARS = new RegExp(`[${[...BEST_FIT.keys()].join('').replace(/[\\\]^-]/g, '\\$&')}]`, 'gu')

/**
 * Whitespace some backend trims from a path segment: JS `\s` plus NEL and the Mongolian vowel
 * separator, which Python's strip() adds (encoded C0 controls never get here: BAD_PATH).
 */
const EDGE_SPACE = /^[\s\x85\u180e]+|[\s\x85\u180e]+$/gu
/** Trailing dots and whitespace, which Windows drops from a file name, in any mix. */
const TRAILING_DOTS = /[\s.\x85\u180e]+$/u
const MARKS = /\p{M}/gu
const IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/
const ONLY_DOTS = /^\.+$/
/** `name::$DATA`, `name:$I30:$INDEX_ALLOCATION`: an NTFS stream of `name`. */
const ADS = /::?\$.*$/s
const SEPARATOR = /[/\\]/
/** A segment whose only possible rewrite is letter case: no escape, `;`, `+`, `:`, edge dot. */
const PLAIN_SEGMENT = /^[\w~!$&'()*,=@-]+(?:\.[\w~!$&'()*,=@-]+)*$/

/** Letters, width, look-alikes and invisible characters folded as the most lenient backend does. */
function foldText (s: string): string {
  if (PRINTABLE_ASCII.test(s)) return s.toLowerCase()
  let t = s.normalize('NFKC').replace(BEST_FIT_CHARS, (c) => BEST_FIT.get(c) as string)
  // Upper then lower: `ß` -> `ss`, `ſ` -> `s`, `ı` -> `i`, `K` (Kelvin) -> `k`; `İ` leaves a
  // combining dot that the mark removal below takes away.
  t = t.toUpperCase().toLowerCase().normalize('NFD').replace(MARKS, '').replace(IGNORABLE, '')
  return t.normalize('NFKC').replace(BEST_FIT_CHARS, (c) => BEST_FIT.get(c) as string)
}

/**
 * Reads one decoded segment into the segments a lenient backend sees (none, one, or several when
 * a look-alike separator appears). Returns AMBIGUOUS for a disguised dot segment.
 */
function readDecodedSegment (decoded: string, out: string[]): typeof AMBIGUOUS | undefined {
  const folded = foldText(decoded)
  const pieces = SEPARATOR.test(folded) ? folded.split(SEPARATOR) : [folded]
  for (let piece of pieces) {
    const semi = piece.indexOf(';')
    if (semi !== -1) piece = piece.slice(0, semi)
    piece = piece.replace(ADS, '').replace(EDGE_SPACE, '')
    if (ONLY_DOTS.test(piece)) return AMBIGUOUS
    piece = piece.replace(TRAILING_DOTS, '')
    if (piece !== '') out.push(piece)
  }
  return undefined
}

const ESCAPE = /%(?:[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})/
const IIS_ESCAPE = /%u([0-9a-fA-F]{4})/g

/**
 * Escapes left after the first decoding are decoded again, IIS `%uXXXX` included: a proxy in
 * front of the backend, or the backend itself, may decode twice (IIS CVE-2001-0333).
 */
function decodeAgain (decoded: string): string {
  for (let round = 0; round < 3 && ESCAPE.test(decoded); round++) {
    try {
      decoded = decodeURIComponent(decoded.replace(IIS_ESCAPE, (_m, hex: string) => encodeURIComponent(String.fromCharCode(parseInt(hex, 16)))))
    } catch {
      break
    }
  }
  return decoded
}

/**
 * The segments of `path` (no query) as a lenient backend reads them, or AMBIGUOUS. `path` must
 * decode (the router refuses paths that do not).
 */
export function readPath (path: string): string[] | typeof AMBIGUOUS {
  const out: string[] = []
  let start = 1
  while (start <= path.length) {
    let end = path.indexOf('/', start)
    if (end === -1) end = path.length
    const raw = path.slice(start, end)
    start = end + 1
    if (raw === '') continue
    if (PLAIN_SEGMENT.test(raw)) {
      out.push(raw.toLowerCase())
      continue
    }
    let decoded: string
    try {
      decoded = decodeURIComponent(raw.includes('+') ? raw.replaceAll('+', ' ') : raw)
    } catch {
      return AMBIGUOUS
    }
    decoded = decodeAgain(decoded)
    const stop = decoded.search(/[?#]/)
    if (stop !== -1) decoded = decoded.slice(0, stop)
    if (readDecodedSegment(decoded, out) === AMBIGUOUS) return AMBIGUOUS
    if (stop !== -1) break
  }
  return out
}

/**
 * The reading of one static segment of a route pattern (route-table.ts): the same folding, so a
 * pattern and the paths that read as it meet in one key. A segment that reads as nothing or as
 * several segments is kept as its lower-case spelling.
 */
export function readPatternSegment (segment: string): string {
  const out: string[] = []
  if (readDecodedSegment(segment, out) === AMBIGUOUS || out.length !== 1) return segment.toLowerCase()
  return out[0] as string
}

/** `ADMINI~1.JSO`: an 8.3 short name; its stem matches any long name that starts with it. */
const SHORT_NAME = /^([^~]{1,6})~\d{1,6}(?:\.[^.]{0,3})?$/

/** The stem of an 8.3 short name, or undefined. */
export function shortNameStem (segment: string): string | undefined {
  return SHORT_NAME.exec(segment)?.[1]
}

/** A long name as NTFS shortens it: spaces and dots removed before the first six characters are taken. */
export function shortNameBase (segment: string): string {
  return segment.replace(/[ .]/g, '')
}
