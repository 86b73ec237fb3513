/**
 * Route-level CORS policy (`config.cors`, also the `cors` option of `defineRoute()`), read and
 * precomputed by the gateway-cors plugin. Deny by default: `false` or absent = no CORS at all.
 */
import { Type, type Static } from '@sinclair/typebox'

export { CORS_RESPONSE_HEADERS } from '../../lib/route-contract.js'

/** A serialized origin (scheme://host[:port]), no path, no trailing slash; or `*` alone. */
const ORIGIN_PATTERN = '^(\\*|https?://(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*)(:[0-9]{1,5})?)$'
const TOKEN_PATTERN = '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$'

export const CorsPolicySchema = Type.Object({
  origins: Type.Array(Type.String({ pattern: ORIGIN_PATTERN, maxLength: 512 }), {
    minItems: 1,
    maxItems: 256,
    uniqueItems: true,
    description: 'Origins allowed to call this route from a browser (exact match, e.g. `https://app.example.com`); `["*"]` = any origin, without credentials.'
  }),
  methods: Type.Optional(Type.Array(Type.Union(['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT'].map((m) => Type.Literal(m))), {
    minItems: 1,
    uniqueItems: true,
    description: 'Methods a preflight allows (default GET, HEAD, POST).'
  })),
  headers: Type.Optional(Type.Array(Type.String({ pattern: TOKEN_PATTERN, maxLength: 128 }), {
    uniqueItems: true,
    maxItems: 64,
    description: 'Request headers a preflight allows (default authorization, content-type, x-api-key).'
  })),
  exposeHeaders: Type.Optional(Type.Array(Type.String({ pattern: TOKEN_PATTERN, maxLength: 128 }), {
    uniqueItems: true,
    maxItems: 64,
    description: 'Response headers browser scripts may read (default none beyond the CORS-safelisted ones).'
  })),
  credentials: Type.Optional(Type.Boolean({ description: 'Allow cookies/Authorization on cross-origin calls (default false; not with `*`).' })),
  maxAgeS: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400, description: 'How long a browser may cache a preflight answer, in seconds (default 600).' }))
}, { additionalProperties: false })

export type CorsPolicy = Static<typeof CorsPolicySchema>

export const CorsRouteConfigSchema = Type.Union([Type.Literal(false), CorsPolicySchema], {
  description: 'CORS for this route: `false` or absent = none (default); an object allows the listed origins.'
})
/** Route `config.cors`. */
export type CorsRouteConfig = Static<typeof CorsRouteConfigSchema>

/** Rules spanning fields: `*` stands alone and never with credentials (Fetch standard). */
export function corsCrossFieldProblems (policy: CorsPolicy): string[] {
  const problems: string[] = []
  if (policy.origins.includes('*')) {
    if (policy.origins.length > 1) problems.push('cors.origins: "*" must be the only entry')
    if (policy.credentials === true) problems.push('cors.credentials: not allowed with origins ["*"]')
  }
  return problems
}
