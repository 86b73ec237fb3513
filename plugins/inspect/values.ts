/**
 * Value normalisation shared by every part of a request: percent-decoding, form pairs (query
 * strings and urlencoded bodies) into keys and values, and the loopback redirect URIs judged
 * inert. Values are filed into a Collected (collected.ts).
 */
import { allowedCharset } from './decode.js'
import type { Collected } from './collected.js'

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

export function isLoopbackRedirect (key: string, value: string): boolean {
  return REDIRECT_KEYS.has(key) && LOOPBACK_REDIRECT.test(value)
}

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
