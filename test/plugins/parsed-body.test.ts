/**
 * One parse of a JSON body for the plugins that read it (lib/parsed-body.ts): the inspection
 * plugin remembers what it parsed from the UTF-8 bytes of a buffered body, and the API contract
 * takes that value; bytes read any other way are never matched, and the contract still judges
 * every body when inspection is off or did not parse it.
 */
import t from 'tap'
import Fastify from 'fastify'
import { fileURLToPath } from 'node:url'
import { rememberedJsonBody } from '../../lib/parsed-body.js'
import { Collected, collectBody } from '../../plugins/inspect/extract.js'
import { inspectPlugin } from '../../plugins/inspect/index.js'
import { openApiPlugin } from '../../plugins/openapi/index.js'

const limits = { maxInspectBytes: 65_536, maxBodyDepth: 32, maxBodyKeys: 1000 }
const collect = (body: Buffer, type: string): void => { collectBody(new Collected(limits.maxInspectBytes, undefined, undefined), body, type, limits) }

t.test('inspection remembers the value of UTF-8 JSON bytes, and only those', async (t) => {
  const utf8 = Buffer.from('{"name":"Zoë","qty":2}')
  collect(utf8, 'application/json')
  t.same(rememberedJsonBody(utf8)?.value, { name: 'Zoë', qty: 2 })

  const explicit = Buffer.from('{"a":1}')
  collect(explicit, 'application/json; charset=utf-8')
  t.same(rememberedJsonBody(explicit)?.value, { a: 1 })

  // JSON is read as UTF-8 only (RFC 8259): any other charset is refused before a parse.
  const latin1 = Buffer.from('{"name":"Zo\u00eb"}', 'latin1')
  t.throws(() => { collect(latin1, 'application/json; charset=iso-8859-1') }, { message: /charset/ })
  t.equal(rememberedJsonBody(latin1), undefined, 'bytes not read as UTF-8 are never remembered')

  const duplicate = Buffer.from('{"role":"admin","role":"user"}')
  t.throws(() => { collect(duplicate, 'application/json') }, { message: /duplicate/ })
  t.equal(rememberedJsonBody(duplicate), undefined, 'a refused body leaves nothing behind')

  const text = Buffer.from('not json {')
  collect(text, 'application/json')
  t.equal(rememberedJsonBody(text), undefined, 'text that is not JSON is not remembered')

  const form = Buffer.from('a=1&b=2')
  collect(form, 'application/x-www-form-urlencoded')
  t.equal(rememberedJsonBody(form), undefined)
})

t.test('the contract judges the same way with inspection in front (shared parse) and without', async (t) => {
  const spec = fileURLToPath(new URL('../fixtures/openapi/orders/orders.yaml', import.meta.url))
  for (const inspect of [true, false]) {
    const app = Fastify()
    await app.register(inspectPlugin)
    await app.register(openApiPlugin)
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, b, done) => { done(null, b) })
    app.decorateRequest('consumer', null)
    app.addHook('onRequest', async (request) => { request.consumer = { id: 'c1', strategy: 'apiKey', scopes: ['orders:write'] } })
    let reached = 0
    app.route({
      method: 'POST',
      url: '/v2/*',
      handler: async () => { reached++; return 'ok' },
      config: { inspect: inspect ? { body: true } : false, openapi: { spec }, openapiPaths: { strip: '', add: '' } }
    })
    await app.ready()
    t.teardown(async () => { await app.close() })
    const post = async (payload: string): Promise<number> => (await app.inject({ method: 'POST', url: '/v2/orders', headers: { 'content-type': 'application/json', 'x-tenant': 'acme', 'x-api-key': 'k' }, payload })).statusCode
    const label = `inspect ${String(inspect)}`
    t.equal(await post('{"customer":"Zoë","lines":[{"sku":"AB-12","quantity":2}]}'), 200, `${label}: an order the contract describes passes`)
    t.equal(reached, 1)
    t.equal(await post('{"customer":"Zoë","lines":[{"sku":"AB-12","quantity":"2"}]}'), 400, `${label}: a string quantity is refused (no coercion of JSON)`)
    t.equal(await post('{"customer":"Zoë","lines":[]}'), 400, `${label}: an empty order is refused`)
    t.equal(await post('{"id":"x","customer":"Zoë","lines":[{"sku":"AB-12","quantity":2}]}'), 400, `${label}: a readOnly field is refused`)
    t.equal(reached, 1, `${label}: no refused order reached the handler`)
  }
})
