/**
 * Schemas of the inspection plugin: the plugin options (`register(inspectPlugin, opts)`) and the
 * route-level `inspect` policy (read by the plugin from `request.routeOptions.config.inspect`).
 */
import { Type, type Static } from '@sinclair/typebox'

/**
 * Rules shared with the environment (src/config-schema.ts): each is written once, here, and used
 * by both the plugin options and the variable that feeds them.
 */
/** Inspection modes (INSPECT_MODE, `mode`, a route's `inspect.mode`). */
import { DEFAULT_INSPECT_MODE, INSPECT_MODES } from '../../lib/route-contract.js'
export { DEFAULT_INSPECT_MODE, INSPECT_MODES }
/** Engine time budget per evaluation, ms (INSPECT_TIMEOUT_MS, `timeoutMs`). */
export const INSPECT_TIMEOUT_MS = Object.freeze({ minimum: 1, maximum: 10_000, default: 50 })
/** Clean values remembered per generation (INSPECT_CACHE_SIZE, `verdictCacheSize`). */
export const VERDICT_CACHE_SIZE = Object.freeze({ minimum: 0, maximum: 1_000_000, default: 10_000 })

export const InspectExclusionSchema = Type.Object({
  rule: Type.String({ minLength: 1, description: 'Rule id (`pc-sqli-010`, or an operator rule\'s id).' }),
  field: Type.String({ minLength: 1, description: 'The field the rule is not applied to, or `*` for every field.' })
}, { additionalProperties: false })
/** One per-field rule exclusion. */
export type InspectExclusion = Static<typeof InspectExclusionSchema>

export const InspectPolicySchema = Type.Object({
  mode: Type.Optional(Type.Union(INSPECT_MODES.map((m) => Type.Literal(m)), {
    description: '`block` (default) answers 403; `detect` only logs and counts what would have been blocked.'
  })),
  body: Type.Optional(Type.Boolean({
    description: 'Buffer and inspect request bodies (up to BODY_LIMIT); default false keeps bodies streaming.'
  })),
  contentEncoding: Type.Optional(Type.Union([Type.Literal('decode'), Type.Literal('refuse')], {
    description: 'Coded request bodies (Content-Encoding gzip, x-gzip, deflate, br) on a route that inspects bodies: `decode` (default) inspects the decoded body and forwards the original bytes; `refuse` answers 415. Unknown codings are always 415.'
  })),
  exclude: Type.Optional(Type.Array(InspectExclusionSchema, {
    uniqueItems: true,
    description: 'Rules not applied to one field on this route (known false positives): `{ rule: "pc-sqli-010", field: "body.sql" }`. Fields: `*` (every field), `path`, `query.<name>`, `header.<name>` (lower case), `cookie.<name>`, `body.<path>` (a JSON dot path, or an urlencoded or multipart field name). Every other rule still judges the field, and the rule every other field.'
  })),
  detect: Type.Optional(Type.Array(Type.String({ minLength: 1 }), {
    uniqueItems: true,
    description: 'Rule ids in detect mode on this route: their matches are logged and counted (`action="detected"`) but block nothing; a request still blocks when another rule matches.'
  }))
}, { additionalProperties: false })

export const InspectRouteConfigSchema = Type.Union([Type.Literal(false), InspectPolicySchema], {
  description: '`false` turns inspection off for the route; omitted means `{ mode: "block" }`.'
})
export type InspectRouteConfig = Static<typeof InspectRouteConfigSchema>

export const InspectOptionsSchema = Type.Object({
  mode: Type.Union(INSPECT_MODES.map((m) => Type.Literal(m)), {
    default: DEFAULT_INSPECT_MODE,
    description: 'Mode of routes whose `inspect` policy sets none (INSPECT_MODE).'
  }),
  rulesFile: Type.Optional(Type.String({
    minLength: 1,
    description: 'Additional ruleset (libddwaf JSON) loaded beside the built-in one (INSPECT_RULES_FILE).'
  })),
  detectRules: Type.Array(Type.String({ minLength: 1 }), {
    default: [],
    uniqueItems: true,
    description: 'Rule ids in detect mode on every inspected route, beside each route\'s `detect` (INSPECT_DETECT_RULES).'
  }),
  maxInspectBytes: Type.Integer({
    minimum: 1024,
    maximum: 16 * 1024 * 1024,
    default: 32 * 1024,
    description: 'Characters of text inspected per request phase (URL+headers, then body). Past it: 413 in block mode, logged and passed in detect mode. Inspection time grows linearly with it (about 1 ms per KiB).'
  }),
  maxBodyDepth: Type.Integer({ minimum: 1, maximum: 1000, default: 32, description: 'Nesting depth of an inspected JSON body; deeper is 400.' }),
  maxBodyKeys: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 2000, description: 'Members and items of an inspected JSON body; more is 400.' }),
  verdictCacheSize: Type.Integer({
    ...VERDICT_CACHE_SIZE,
    description: 'Clean values remembered per generation (two generations) so repeated benign values are not evaluated again; 0 turns it off. Used only when every loaded rule reads one address with one condition (the built-in ruleset does).'
  }),
  timeoutMs: Type.Integer({
    ...INSPECT_TIMEOUT_MS,
    description: 'Engine time budget per evaluation; a timeout blocks in block mode and is logged in detect mode.'
  })
}, { additionalProperties: false })

/** Validated options of the `gateway-inspect` plugin (defaults applied). */
export type InspectOptions = Static<typeof InspectOptionsSchema>

/** Options accepted by `register(inspectPlugin, …)`; every field is optional. */
export type InspectPluginOptions = Partial<InspectOptions>
