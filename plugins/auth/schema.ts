/**
 * Route-level `auth` policy schema (read by the auth plugin from `request.routeOptions.config.auth`).
 */
import { Type, type Static } from '@sinclair/typebox'

export const AuthStrategySchema = Type.Union([Type.Literal('jwt'), Type.Literal('apiKey')], {
  description: 'An authentication strategy: a JWT bearer token or an API key in `x-api-key`.'
})
export type AuthStrategy = Static<typeof AuthStrategySchema>

export const AuthPolicySchema = Type.Object({
  strategies: Type.Optional(Type.Array(AuthStrategySchema, {
    minItems: 1,
    uniqueItems: true,
    description: 'Strategies accepted on this route; default: every strategy the gateway has configured.'
  })),
  relation: Type.Optional(Type.Union([Type.Literal('any'), Type.Literal('all')], {
    description: '`any` (default): one valid credential suffices; `all`: every listed strategy must pass.'
  })),
  scopes: Type.Optional(Type.Array(Type.String({ minLength: 1, pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$' }), {
    uniqueItems: true,
    description: 'Scopes the caller must all hold (JWT `scope`/`scp`); missing scopes answer 403.'
  }))
}, { additionalProperties: false })

export const AuthRouteConfigSchema = Type.Union([Type.Literal(false), AuthPolicySchema], {
  description: '`false` makes the route public; an object requires authentication.'
})
export type AuthRouteConfig = Static<typeof AuthRouteConfigSchema>
