/**
 * Route-level `inspect` policy schema (read by the inspection plugin from `request.routeOptions.config.inspect`).
 */
import { Type, type Static } from '@sinclair/typebox'

export const InspectPolicySchema = Type.Object({
  mode: Type.Optional(Type.Union([Type.Literal('block'), Type.Literal('detect')], {
    description: '`block` (default) answers 403; `detect` only logs and counts what would have been blocked.'
  })),
  body: Type.Optional(Type.Boolean({
    description: 'Buffer and inspect request bodies (up to BODY_LIMIT); default false keeps bodies streaming.'
  })),
  exclude: Type.Optional(Type.Array(Type.String({ minLength: 1 }), {
    uniqueItems: true,
    description: 'Rule ids not applied on this route (known false positives).'
  }))
}, { additionalProperties: false })

export const InspectRouteConfigSchema = Type.Union([Type.Literal(false), InspectPolicySchema], {
  description: '`false` turns inspection off for the route; omitted means `{ mode: "block" }`.'
})
export type InspectRouteConfig = Static<typeof InspectRouteConfigSchema>
