/**
 * Options of the security headers plugin (`gateway-security-headers`), validated at registration.
 */
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { ConfigError } from '../../lib/errors.js'

export const SecurityHeadersOptionsSchema = Type.Object({
  tls: Type.Boolean({ default: false, description: 'Clients reach the gateway over TLS: send Strict-Transport-Security (never without TLS).' }),
  hstsMaxAgeS: Type.Integer({ minimum: 0, maximum: 63_072_000, default: 31_536_000, description: 'HSTS max-age in seconds (default one year).' }),
  hstsIncludeSubDomains: Type.Boolean({ default: true, description: 'HSTS includeSubDomains.' }),
  contentSecurityPolicy: Type.String({
    minLength: 1,
    maxLength: 4096,
    pattern: '^[\\x20-\\x7e]+$',
    default: "default-src 'none'; frame-ancestors 'none'",
    description: 'Content-Security-Policy for every response (an API serves no active content).'
  })
}, { additionalProperties: false })

/** Options accepted by `register(securityHeadersPlugin, …)`. */
export type SecurityHeadersPluginOptions = Partial<Static<typeof SecurityHeadersOptionsSchema>>
/** Validated, frozen options. */
export type SecurityHeadersOptions = Readonly<Static<typeof SecurityHeadersOptionsSchema>>

const check = TypeCompiler.Compile(SecurityHeadersOptionsSchema)

/** Applies defaults (without touching the caller's object), validates, freezes. */
export function resolveSecurityHeadersOptions (opts: SecurityHeadersPluginOptions | undefined): SecurityHeadersOptions {
  const o = {
    tls: false,
    hstsMaxAgeS: 31_536_000,
    hstsIncludeSubDomains: true,
    contentSecurityPolicy: "default-src 'none'; frame-ancestors 'none'",
    ...opts
  }
  const problems = [...check.Errors(o)].map((e) => `${e.path.slice(1) || 'options'}: ${e.message}`)
  if (problems.length > 0) throw new ConfigError('invalid gateway-security-headers options', problems)
  return Object.freeze(o)
}
