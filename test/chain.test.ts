/**
 * The plugin chain (src/chain.ts) is the one place its order is written: these tests fail when
 * the order drifts, when an entry's name is not its plugin's fastify-plugin name, when a declared
 * dependency comes later, when the gateway registers something else, or when an exported plugin
 * is missing from the chain. Fastify itself refuses a declared dependency registered too late.
 */
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { PluginMetadata } from 'fastify-plugin'
import * as portcullis from 'portcullis'
import { buildGateway, loadConfig, proxyPlugin, proxyScopePlugin } from 'portcullis'
import { GATEWAY_CHAIN } from '../src/chain.js'

/** The chain, in registration order: the spec. */
const EXPECTED = [
  'portcullis-observability',
  'portcullis-metrics',
  'portcullis-tracing',
  'portcullis-security-headers',
  'portcullis-overload',
  'portcullis-ip-filter',
  'portcullis-ip-rate-limit',
  'portcullis-request-guard',
  'portcullis-cors',
  'portcullis-auth',
  'portcullis-route-rate-limit',
  'portcullis-inspect',
  'portcullis-openapi',
  'portcullis-proxy',
  'portcullis-proxy-scope'
]

function metaOf (plugin: unknown): PluginMetadata | undefined {
  if (typeof plugin !== 'function') return undefined
  return (plugin as unknown as Record<symbol, PluginMetadata | undefined>)[Symbol.for('plugin-meta')]
}

/** The names of the fastify-plugin plugins registered on `app`, in registration order. */
function registeredNames (app: FastifyInstance): readonly string[] {
  return (app as unknown as Record<symbol, readonly string[]>)[Symbol.for('registered-plugin')]
}

async function gateway (t: { teardown: (fn: () => unknown) => void }, env: Record<string, string>): Promise<FastifyInstance> {
  const app = await buildGateway(loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env }), { routes: [], logger: false })
  t.teardown(async () => { await app.close() })
  await app.ready()
  return app
}

t.test('the chain is in the expected order', async (t) => {
  t.strictSame(GATEWAY_CHAIN.map((e) => e.name), EXPECTED)
})

t.test('each entry names its plugin by the plugin\'s own fastify-plugin name, and every plugin declares its dependencies', async (t) => {
  for (const entry of GATEWAY_CHAIN) {
    const meta = metaOf(entry.plugin)
    t.equal(meta?.name, entry.name, `${entry.name}: fastify-plugin name`)
    t.ok(Array.isArray(meta?.dependencies), `${entry.name}: declares dependencies (an empty list when it needs none)`)
    t.equal(meta?.fastify, '5.x', `${entry.name}: Fastify 5`)
    t.not(entry.description, '', `${entry.name}: described`)
  }
  t.equal(new Set(GATEWAY_CHAIN.map((e) => e.plugin)).size, GATEWAY_CHAIN.length, 'each plugin once')
})

t.test('every declared dependency comes earlier in the chain', async (t) => {
  const before = new Set<string>()
  let declared = 0
  for (const entry of GATEWAY_CHAIN) {
    for (const dependency of metaOf(entry.plugin)?.dependencies ?? []) {
      declared++
      t.ok(before.has(dependency), `${entry.name} needs ${dependency} before it`)
    }
    before.add(entry.name)
  }
  t.ok(declared > 0, 'at least one dependency is declared (portcullis-proxy-scope on portcullis-proxy)')
})

t.test('every plugin the package exports is in the chain', async (t) => {
  const inChain = new Set<unknown>(GATEWAY_CHAIN.map((e) => e.plugin))
  const exported = Object.entries(portcullis).filter(([name, value]) => name !== 'gatewayPlugin' && metaOf(value) !== undefined)
  t.ok(exported.length >= EXPECTED.length, 'the plugins are found among the exports')
  for (const [name, value] of exported) t.ok(inChain.has(value), `${name} is in GATEWAY_CHAIN`)
})

t.test('the gateway registers the chain in its order', async (t) => {
  t.test('with ADMIN_PORT: every plugin', async (t) => {
    const app = await gateway(t, { ADMIN_PORT: '0' })
    const names = registeredNames(app)
    t.equal(names[0], 'portcullis-gateway')
    t.strictSame(names.filter((n) => n.startsWith('portcullis-') && n !== 'portcullis-gateway'), EXPECTED, 'registered in the chain order, nothing else of the gateway\'s')
    for (const name of EXPECTED) t.ok(app.hasPlugin(name), `hasPlugin(${name})`)
    const printed = [...app.printPlugins().matchAll(/(portcullis-[a-z-]+) \d+ ms/g)].map((m) => m[1]).filter((n) => n !== 'portcullis-gateway')
    t.strictSame(printed, EXPECTED, 'printPlugins() shows the same order')
  })

  t.test('without ADMIN_PORT: no metrics, the rest in order', async (t) => {
    const app = await gateway(t, {})
    t.strictSame(registeredNames(app).filter((n) => n.startsWith('portcullis-') && n !== 'portcullis-gateway'), EXPECTED.filter((n) => n !== 'portcullis-metrics'))
    t.notOk(app.hasPlugin('portcullis-metrics'))
  })
})

t.test('the entries say when they are registered', async (t) => {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1' })
  const left = GATEWAY_CHAIN.filter((e) => e.options(config) === undefined).map((e) => e.name)
  t.strictSame(left, ['portcullis-metrics'], 'only metrics waits for ADMIN_PORT')
  const withAdmin = loadConfig({ PORT: '0', HOST: '127.0.0.1', ADMIN_PORT: '0' })
  t.strictSame(GATEWAY_CHAIN.filter((e) => e.options(withAdmin) === undefined), [])
})

t.test('Fastify refuses a declared dependency registered after its dependent', async (t) => {
  const wrong = Fastify({ logger: false })
  t.teardown(async () => { await wrong.close() })
  wrong.register(proxyScopePlugin)
  wrong.register(proxyPlugin)
  await t.rejects(async () => { await wrong.ready() }, {
    code: 'FST_ERR_PLUGIN_DEPENDENCY_NOT_REGISTERED',
    message: "The dependency 'portcullis-proxy' of plugin 'portcullis-proxy-scope' is not registered"
  })

  const right = Fastify({ logger: false })
  t.teardown(async () => { await right.close() })
  right.register(proxyPlugin)
  right.register(proxyScopePlugin)
  await right.ready()
  t.ok(right.hasPlugin('portcullis-proxy-scope'), 'the chain\'s order boots')
})
