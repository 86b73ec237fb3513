/**
 * docs/guides/embedding.md documents every option of every plugin a host registers, under the
 * plugin's own heading, with its default: the guide cannot fall behind the TypeBox schemas.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { TObject } from '@sinclair/typebox'
import { AuthPluginOptionsSchema } from '../plugins/auth/schema.js'
import { InspectOptionsSchema } from '../plugins/inspect/schema.js'
import { IpFilterOptionsSchema } from '../plugins/ip-filter/schema.js'
import { MetricsOptionsSchema } from '../plugins/metrics/schema.js'
import { OverloadOptionsSchema } from '../plugins/overload/schema.js'
import { IpRateLimitOptionsSchema, RouteRateLimitOptionsSchema } from '../plugins/rate-limit/schema.js'
import { SecurityHeadersOptionsSchema } from '../plugins/security-headers/schema.js'
import { TracingOptionsSchema } from '../plugins/tracing/schema.js'
import { ProxyPluginOptionsSchema } from '../plugins/proxy/index.js'
import * as portcullis from 'portcullis'

const guide = readFileSync(fileURLToPath(new URL('../docs/guides/embedding.md', import.meta.url)), 'utf8')

const plugins: Array<[string, TObject]> = [
  ['authPlugin', AuthPluginOptionsSchema],
  ['ipFilterPlugin', IpFilterOptionsSchema],
  ['ipRateLimitPlugin', IpRateLimitOptionsSchema],
  ['routeRateLimitPlugin', RouteRateLimitOptionsSchema],
  ['inspectPlugin', InspectOptionsSchema],
  ['proxyPlugin', ProxyPluginOptionsSchema],
  ['securityHeadersPlugin', SecurityHeadersOptionsSchema],
  ['overloadPlugin', OverloadOptionsSchema],
  ['tracingPlugin', TracingOptionsSchema],
  ['metricsPlugin', MetricsOptionsSchema]
]

t.test('every plugin option is in the guide, in its plugin section, with its default', async (t) => {
  for (const [name, schema] of plugins) {
    t.ok(name in portcullis, `${name} is exported`)
    const start = guide.indexOf(`\n### ${name}\n`)
    t.ok(start !== -1, `${name} has a section`)
    const end = guide.indexOf('\n#', start + 1)
    const section = guide.slice(start, end === -1 ? undefined : end)
    for (const [key, prop] of Object.entries(schema.properties)) {
      const row = section.split('\n').find((l) => l.startsWith(`| \`${key}\` |`))
      t.ok(row !== undefined, `${name}.${key} documented`)
      const def = (prop as { default?: unknown }).default
      if (typeof def === 'number' || typeof def === 'boolean') t.match(row ?? '', `| \`${String(def)}\` |`, `${name}.${key} default ${String(def)}`)
      if ((schema.required ?? []).includes(key) && def === undefined) t.match(row ?? '', '**required**', `${name}.${key} marked required`)
    }
  }
})

t.test('the functions the guide tells a host to import are exported', async (t) => {
  for (const name of ['hostServerOptions', 'loggerOptions', 'genRequestId', 'redactUrl', 'REDACT_PATHS', 'acceptProxyProtocol', 'gatewayErrorHandler', 'gatewayNotFoundHandler', 'serverOptions', 'buildGateway', 'gatewayPlugin', 'start', 'routePolicy', 'defineRoute', 'observabilityPlugin', 'requestGuardPlugin', 'corsPlugin', 'proxyScopePlugin']) {
    t.ok(name in portcullis, `${name} is exported`)
    t.ok(guide.includes(name), `${name} is in the guide`)
  }
})
