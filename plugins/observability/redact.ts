/**
 * Redaction for logs: secret-looking query parameters and credential headers never reach a log line.
 */

/** Query parameter names whose values are replaced by [REDACTED] in logged URLs. */
const SECRET_PARAM = /([?&](?:[^=&]*(?:key|token|secret|password|passwd|pwd|auth|session|signature|sig|code|jwt|credential)[^=&]*)=)[^&#]*/gi

/** The URL with secret-looking query values redacted (no work when there is no query). */
export function redactUrl (url: string): string {
  return url.includes('?') ? url.replace(SECRET_PARAM, '$1[REDACTED]') : url
}

/** pino `redact` paths for request/response headers that carry credentials. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'headers["x-api-key"]',
  'headers["proxy-authorization"]',
  'headers["set-cookie"]',
  'err.headers',
  'err.config',
  'err.request'
]
