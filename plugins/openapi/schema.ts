/**
 * Schema of the route-level `openapi` policy (read by the plugin from `config.openapi`).
 */
import { Type, type Static } from '@sinclair/typebox'

export const OpenApiPolicySchema = Type.Object({
  spec: Type.String({ minLength: 1, description: 'The OpenAPI 3.0 or 3.1 document (YAML or JSON; `$ref`s to other files are followed): a path relative to the route module\'s file, or absolute. Loaded, validated and compiled at startup.' }),
  mode: Type.Optional(Type.Union([Type.Literal('block'), Type.Literal('detect')], {
    description: '`block` (default) refuses requests that break the contract; `detect` only logs and counts them (`portcullis_contract_violations_total`).'
  })),
  responses: Type.Optional(Type.Union([Type.Literal('off'), Type.Literal('detect'), Type.Literal('block')], {
    description: 'Upstream responses checked against the operation: `off` (default); `detect` counts undeclared statuses and buffered JSON bodies that do not match; `block` replaces them with 502 GW_CONTRACT_RESPONSE.'
  })),
  unknownOperations: Type.Optional(Type.Union([Type.Literal('refuse'), Type.Literal('pass')], {
    description: 'Paths and methods the document does not declare: `refuse` (default: 404 / 405) or `pass` (forwarded, counted as shadow endpoints).'
  }))
}, { additionalProperties: false })

export const OpenApiRouteConfigSchema = Type.Union([Type.Literal(false), OpenApiPolicySchema], {
  description: 'Enforce the API\'s OpenAPI contract on this route (positive security): operations, parameters, bodies, security requirements and optionally responses. Bodies are buffered (up to BODY_LIMIT). Default: off.'
})

/** The route option `openapi`. */
export type OpenApiRouteConfig = Static<typeof OpenApiRouteConfigSchema>
/** An enabled contract policy. */
export type OpenApiPolicy = Static<typeof OpenApiPolicySchema>

/**
 * How the path the client sent maps to the path the upstream sees (set by `defineRoute()`):
 * `strip` is removed from its start and `add` put in its place. Host routes leave it out.
 */
export interface OpenApiPathMapping {
  readonly strip: string
  readonly add: string
}
