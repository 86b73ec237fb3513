/**
 * Route-level `rateLimit` policy schema (read by the rate-limit plugin from `request.routeOptions.config.rateLimit`).
 */
import { Type, type Static } from '@sinclair/typebox'

export const RateLimitPolicySchema = Type.Object({
  max: Type.Integer({ minimum: 1, description: 'Requests admitted per window and key.' }),
  timeWindow: Type.Union([
    Type.Integer({ minimum: 1, description: 'Window length in milliseconds.' }),
    Type.String({ pattern: '^\\s*\\d+\\s*(ms|s|sec|second|seconds|m|min|minute|minutes|h|hour|hours)?\\s*$', description: 'Window as text, e.g. `1 minute`.' })
  ]),
  keyBy: Type.Optional(Type.Union([Type.Literal('consumer'), Type.Literal('ip')], {
    description: 'Count per authenticated consumer (default; by IP on public routes) or per client IP.'
  }))
}, { additionalProperties: false })

export const RateLimitRouteConfigSchema = Type.Union([Type.Literal(false), RateLimitPolicySchema], {
  description: '`false` disables the per-route limit; omitted uses the gateway default.'
})
export type RateLimitRouteConfig = Static<typeof RateLimitRouteConfigSchema>
