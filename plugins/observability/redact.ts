/**
 * Redaction for logs: secret-looking query parameters and credential headers never reach a log line.
 */

/** Query parameter names whose values are replaced by [REDACTED] in logged URLs. */
const SECRET_NAME = /key|token|secret|pass|pwd|auth|session|signature|sig|code|jwt|credential/i
/** One `name=value` of a query string (`;` too: some servers split on it). */
const QUERY_PARAM = /([?&;])([^=&;#]*)=([^&;#]*)/g

function redactParam (whole: string, separator: string, name: string): string {
  let plain = name
  // The upstream decodes the name (`tok%65n` is `token`), so the check does too.
  if (name.includes('%') || name.includes('+')) {
    try {
      plain = decodeURIComponent(name.replaceAll('+', ' '))
    } catch {}
  }
  return SECRET_NAME.test(plain) ? `${separator}${name}=[REDACTED]` : whole
}

/** The URL with secret-looking query values redacted (no work when there is no query). */
export function redactUrl (url: string): string {
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q) + url.slice(q).replace(QUERY_PARAM, redactParam)
}

/** pino `redact` paths for request/response headers that carry credentials. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'req.headers["proxy-authorization"]',
  'req.headers["sec-websocket-protocol"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'headers["x-api-key"]',
  'headers["proxy-authorization"]',
  'headers["sec-websocket-protocol"]',
  'headers["set-cookie"]',
  'err.headers',
  'err.config',
  'err.request'
]
