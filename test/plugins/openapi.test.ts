/**
 * gateway-openapi: detect mode, shadow endpoints, response validation, startup errors, metrics
 * and host routes (`routePolicy({ openapi })`).
 */
import diagnostics from 'node:diagnostics_channel'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import Fastify from 'fastify'
import { defineRoute, gatewayErrorHandler, openApiPlugin, routePolicy } from 'portcullis'
import type { ContractViolationSignal } from '../../lib/signals.js'
import { startGateway } from '../helpers/gateway.js'
import { startUpstream, type UpstreamHandler } from '../helpers/upstream.js'

const PETSTORE = fileURLToPath(new URL('../fixtures/openapi/petstore-expanded.yaml', import.meta.url))

function signals (t: { teardown: (fn: () => void) => void }): ContractViolationSignal[] {
  const seen: ContractViolationSignal[] = []
  const channel = diagnostics.channel('portcullis:contract.violation')
  const fn = (m: unknown): void => { seen.push(m as ContractViolationSignal) }
  channel.subscribe(fn)
  t.teardown(() => { channel.unsubscribe(fn) })
  return seen
}

const ITEMS = {
  openapi: '3.1.0',
  info: { title: 'items', version: '1' },
  paths: {
    '/items': {
      get: {
        responses: {
          200: {
            description: 'ok',
            content: {
              'application/json': {
                schema: {
                  type: 'array',
                  items: { type: 'object', required: ['id'], properties: { id: { type: 'integer' }, secret: { type: 'string', writeOnly: true } } }
                }
              }
            }
          }
        }
      }
    }
  }
}

function itemsDoc (): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-openapi-'))
  const file = join(dir, 'items.json')
  writeFileSync(file, JSON.stringify(ITEMS))
  return file
}

/** Answers per `?case=`: good, bad body, writeOnly leaked, undeclared status, big (streamed). */
const itemsUpstream: UpstreamHandler = (req, res) => {
  const c = new URL(req.url ?? '/', 'http://x').searchParams.get('case')
  const bodies: Record<string, string> = {
    good: '[{"id":1}]',
    bad: '[{"id":"one"}]',
    leak: '[{"id":1,"secret":"s3cr3t"}]',
    big: JSON.stringify(Array.from({ length: 5000 }, (_, i) => ({ id: i })))
  }
  const status = c === 'status' ? 500 : 200
  const body = bodies[c ?? 'good'] ?? '{"error":"x"}'
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-upstream': 'yes' })
  res.end(body)
}

t.test('detect mode: violations pass to the upstream and are counted; shadow endpoints too', async (t) => {
  const seen = signals(t)
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { ADMIN_PORT: '0' },
    routes: [defineRoute({ prefix: '/shop', upstream: up.url, rewritePrefix: '/api', auth: false, rateLimit: false, openapi: { spec: PETSTORE, mode: 'detect' } })]
  })
  const a = await fetch(`${gw.url}/shop/pets?limit=1000`)
  t.equal(a.status, 200, 'query violation passes in detect mode')
  const b = await fetch(`${gw.url}/shop/owners`)
  t.equal(b.status, 200, 'undeclared path passes in detect mode')
  const c = await fetch(`${gw.url}/shop/pets`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"nom":"x"}' })
  t.equal(c.status, 200, 'body violation passes in detect mode')
  t.equal(up.requests.length, 3, 'the upstream received all three')
  t.same(seen.map((s) => `${s.operation} ${s.kind} ${String(s.blocked)}`), [
    'GET /pets query false',
    '(unknown) unknown-operation false',
    '(unknown) shadow false',
    'POST /pets body false'
  ])
  const text = await gw.app.portcullisAdmin.registry.metrics()
  t.match(text, /portcullis_contract_violations_total\{route="\/shop",operation="GET \/pets",kind="query",action="detected"[^}]*\} 1/, 'counted in portcullis_contract_violations_total')
  t.match(text, /operation="\(unknown\)",kind="shadow",action="detected"/, 'shadow endpoint counted')
  t.ok(gw.logs.some((l) => (l.contract as { violations?: string[] } | undefined)?.violations?.includes('/query/limit: maximum')), 'details at debug')
})

t.test('unknownOperations: pass forwards undeclared operations in block mode, counted as shadow', async (t) => {
  const seen = signals(t)
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    routes: [defineRoute({ prefix: '/shop', upstream: up.url, rewritePrefix: '/api', auth: false, rateLimit: false, openapi: { spec: PETSTORE, unknownOperations: 'pass' } })]
  })
  t.equal((await fetch(`${gw.url}/shop/owners`)).status, 200, 'undeclared path forwarded')
  t.equal((await fetch(`${gw.url}/shop/pets/1`, { method: 'PUT' })).status, 200, 'undeclared method forwarded')
  t.equal((await fetch(`${gw.url}/shop/pets?limit=0`)).status, 400, 'declared operations are still enforced')
  t.equal(up.requests.length, 2)
  t.equal(seen.filter((s) => s.kind === 'shadow').length, 2)
})

t.test('responses: detect counts, block replaces with 502; large responses pass unvalidated', async (t) => {
  const file = itemsDoc()
  for (const responses of ['detect', 'block'] as const) {
    await t.test(responses, async (t) => {
      const seen = signals(t)
      const up = await startUpstream(t, itemsUpstream)
      const gw = await startGateway(t, {
        routes: [defineRoute({ prefix: '/inv', upstream: up.url, auth: false, rateLimit: false, openapi: { spec: file, responses } })]
      })
      const good = await fetch(`${gw.url}/inv/items?case=good`)
      t.equal(good.status, 200)
      t.equal(await good.text(), '[{"id":1}]', 'a valid response is untouched')
      for (const [c, kind] of [['bad', 'response-body'], ['leak', 'response-body'], ['status', 'response-status']] as const) {
        const res = await fetch(`${gw.url}/inv/items?case=${c}`)
        const text = await res.text()
        if (responses === 'detect') {
          t.equal(res.status, c === 'status' ? 500 : 200, `${c}: passed in detect mode`)
        } else {
          t.equal(res.status, 502, `${c}: replaced`)
          t.equal((JSON.parse(text) as { code: string }).code, 'GW_CONTRACT_RESPONSE')
          t.equal(res.headers.get('x-upstream'), null, `${c}: the upstream's headers are gone`)
          t.notOk(text.includes('s3cr3t'), `${c}: nothing of the upstream body`)
          t.ok(res.headers.get('x-request-id'), `${c}: the gateway's own headers stay`)
        }
        t.ok(seen.some((s) => s.kind === kind && s.blocked === (responses === 'block')), `${c}: counted as ${kind}`)
      }
      const big = await fetch(`${gw.url}/inv/items?case=big`)
      t.equal(big.status, 200, 'a streamed (large) response passes')
      t.equal((await big.text()).length > 16_384, true)
      t.ok(seen.some((s) => s.kind === 'response-unvalidated'), 'counted as unvalidated')
    })
  }
})

t.test('an invalid document stops startup: route file, spec file and JSON pointer', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-openapi-bad-'))
  const bad = join(dir, 'bad.yaml')
  writeFileSync(bad, 'openapi: 3.0.3\ninfo: { title: x, version: "1" }\npaths:\n  /a:\n    get:\n      responses:\n        "200": { descriptio: typo }\n')
  const up = await startUpstream(t)
  const err = await startGateway(t, { routes: [defineRoute({ prefix: '/bad', upstream: up.url, auth: false, openapi: { spec: bad } })] }).then(() => undefined, (e: unknown) => e as Error & { code?: string })
  t.equal(err?.code, 'GW_CONFIG_INVALID')
  t.match(err?.message, 'test/plugins/openapi.test.ts', 'names the route file')
  t.match(err?.message, bad, 'names the spec file')
  t.match(err?.message, '#/paths/~1a/get/responses/200', 'names the JSON pointer')
  await t.rejects(startGateway(t, { routes: [defineRoute({ prefix: '/none', upstream: up.url, auth: false, openapi: { spec: './no-such.yaml' } })] }), /openapi\.spec: .*no-such\.yaml/)
  t.throws(() => defineRoute({ prefix: '/x', upstream: up.url, auth: false, openapi: { spec: bad, mode: 'strict' as 'block' } }), /openapi\.mode/)
})

t.test('host routes: routePolicy({ openapi }) with the plugin registered', async (t) => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  app.setErrorHandler(gatewayErrorHandler)
  await app.register(openApiPlugin)
  app.get('/pets', { config: routePolicy({ auth: false, openapi: { spec: PETSTORE } }) }, async () => ({ ok: true }))
  await app.ready()
  t.equal((await app.inject('/pets?limit=5')).statusCode, 404, 'no servers base in the host path: unknown operation')
  const app2 = Fastify()
  t.teardown(async () => { await app2.close() })
  app2.setErrorHandler(gatewayErrorHandler)
  await app2.register(openApiPlugin)
  app2.get('/api/pets', { config: routePolicy({ auth: false, openapi: { spec: PETSTORE } }) }, async () => ({ ok: true }))
  await app2.ready()
  t.equal((await app2.inject('/api/pets?limit=5')).statusCode, 200)
  const res = await app2.inject('/api/pets?limit=500')
  t.equal(res.statusCode, 400)
  t.same(res.json().violations, ['/query/limit: maximum'])
})
