/**
 * API contracts against parameter pollution and JSON interoperability (real TCP, real upstream):
 * what the contract validates must be what the backend reads. A backend may read another value
 * than the one validated when a name is given twice (first, last or joined, per framework), under
 * another spelling (ASP.NET binds query names case-insensitively; PHP, Rails and qs read
 * `name[]`; Go's encoding/json and ASP.NET match JSON members case-insensitively), or when a JSON
 * key is written twice (JSON.parse keeps the last, other parsers the first). Each is refused in
 * block mode with the upstream receiving nothing; the same request written once, as declared,
 * passes byte for byte.
 */
import t from 'tap'
import { defineRoute } from 'portcullis'
import { CANARY, passes, refused } from '../helpers/contract.js'
import { startGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'

const API_KEY = 'pollution-key-0123456789abcdef'
const json = { 'content-type': 'application/json' }

t.test('query, header and cookie names a backend could read otherwise (orders document)', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { API_KEYS: `shop:${API_KEY}` },
    routes: [defineRoute({ prefix: '/o', upstream: up.url, rewritePrefix: '/v2', auth: { strategies: ['apiKey'] }, rateLimit: false, openapi: { spec: '../fixtures/openapi/orders/orders.yaml' } })]
  })
  const h = { 'x-api-key': API_KEY, 'x-tenant': 'acme-eu' }
  // Declared, written once: passes (an exploded array and deepObject members may repeat their form).
  await passes(t, gw, up, { method: 'GET', path: '/o/orders?page=2&status=open,shipped&filter[minTotal]=5', headers: h }, '/v2/orders?page=2&status=open,shipped&filter[minTotal]=5', 'declared names once')
  await passes(t, gw, up, { method: 'GET', path: '/o/public/catalog?ids=1&ids=2', headers: { 'x-api-key': API_KEY } }, '/v2/public/catalog?ids=1&ids=2', 'an exploded array repeats its name')
  await passes(t, gw, up, { method: 'GET', path: '/o/orders?page=2&utm_source=mail', headers: h }, '/v2/orders?page=2&utm_source=mail', 'an undeclared name of its own passes')

  // Given twice: Express makes an array, PHP takes the last, ASP.NET joins them with a comma.
  await refused(t, gw, up, { method: 'GET', path: `/o/orders?page=2&page=${CANARY}`, headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'a one-valued query name twice', '/query/page: repeated')
  await refused(t, gw, up, { method: 'GET', path: '/o/orders?page=2&page=2', headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'the same value twice', '/query/page: repeated')
  await refused(t, gw, up, { method: 'GET', path: '/o/orders?status=open&status=evil', headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'a comma-delimited array given twice', '/query/status: repeated')
  // Another spelling of a declared name.
  await refused(t, gw, up, { method: 'GET', path: `/o/orders?page=2&Page=${CANARY}`, headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'the name in another case (ASP.NET binds it)', '/query/page: ambiguous')
  await refused(t, gw, up, { method: 'GET', path: '/o/orders?PAGE=0', headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'only the other spelling', '/query/page: ambiguous')
  await refused(t, gw, up, { method: 'GET', path: `/o/orders?status[]=${CANARY}`, headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'name[] (PHP, Rails, qs read it as the name)', '/query/status: ambiguous')
  await refused(t, gw, up, { method: 'GET', path: `/o/orders?page[0]=${CANARY}`, headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'name[0]', '/query/page: ambiguous')
  await refused(t, gw, up, { method: 'GET', path: `/o/orders?p%61ge=2&P%41GE=${CANARY}`, headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'percent-encoded spellings are decoded first', '/query/page: ambiguous')
  await refused(t, gw, up, { method: 'GET', path: `/o/orders?Filter[currency]=${CANARY}`, headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'a deepObject under another case', '/query/filter: ambiguous')
  await refused(t, gw, up, { method: 'GET', path: `/o/orders?filter[minTotal]=5&filter[minTotal]=${CANARY}`, headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'a deepObject member twice (qs makes an array)', '/query/filter: repeated')
  await refused(t, gw, up, { method: 'GET', path: `/o/orders?filter=${CANARY}`, headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'a deepObject given as a plain value (qs reads a string)', '/query/filter: type')

  // Cookies: the first is validated; Python's SimpleCookie and others keep the last.
  await refused(t, gw, up, { method: 'GET', path: '/o/orders', headers: { ...h, cookie: `session=abc; session=${CANARY}` } }, 400, 'GW_CONTRACT_VIOLATION', 'a declared cookie twice', '/cookie/session: repeated')
  await passes(t, gw, up, { method: 'GET', path: '/o/orders', headers: { ...h, cookie: 'session=abc; theme=dark; theme=light' } }, '/v2/orders', 'an undeclared cookie twice is not the contract\'s')

  // A one-valued header on two lines (fetch would fold them into one: a raw socket).
  const before = up.requests.length
  const res = await rawRequest(gw.port, `GET /o/orders HTTP/1.1\r\nHost: x\r\nX-Api-Key: ${API_KEY}\r\nX-Tenant: acme-eu\r\nX-Tenant: ${CANARY}\r\nConnection: close\r\n\r\n`)
  t.equal(res.status, 400, 'a declared header on two lines: 400')
  t.match(res.body, /\/header\/x-tenant: repeated/, 'names the header')
  t.notOk(res.body.includes(CANARY), 'the value is not echoed')
  t.equal(up.requests.length, before, 'a declared header on two lines: the upstream received nothing')
})

t.test('detect mode counts the same and passes', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { API_KEYS: `shop:${API_KEY}`, ADMIN_PORT: '0' },
    routes: [defineRoute({ prefix: '/o', upstream: up.url, rewritePrefix: '/v2', auth: { strategies: ['apiKey'] }, rateLimit: false, openapi: { spec: '../fixtures/openapi/orders/orders.yaml', mode: 'detect' } })]
  })
  await passes(t, gw, up, { method: 'GET', path: '/o/orders?page=2&Page=3', headers: { 'x-api-key': API_KEY, 'x-tenant': 'acme-eu' } }, '/v2/orders?page=2&Page=3', 'detect: passed')
  const metrics = await gw.app.portcullisAdmin.registry.metrics()
  t.match(metrics, /portcullis_contract_violations_total\{route="\/o",operation="GET \/orders",kind="query",action="detected"[^}]*\} 1/, 'detect: counted as a query violation')
  t.ok(gw.logs.some((l) => (l.contract as { violations?: string[] } | undefined)?.violations?.includes('/query/page: ambiguous')), 'detect: the violation at debug')
})

t.test('JSON bodies: keys written twice, and members a case-insensitive backend would bind', async (t) => {
  const up = await startUpstream(t)
  // Inspection off: the contract does not rely on the inspection plugin to have refused the body
  // first (it refuses duplicate keys too, in either of its modes, as an invalid body).
  const gw = await startGateway(t, {
    routes: [
      defineRoute({ prefix: '/pets-off', upstream: up.url, rewritePrefix: '/api', auth: false, rateLimit: false, inspect: false, openapi: { spec: '../fixtures/openapi/petstore-expanded.yaml' } }),
      defineRoute({ prefix: '/pets-inspected', upstream: up.url, rewritePrefix: '/api', auth: false, rateLimit: false, inspect: { mode: 'detect', body: true }, openapi: { spec: '../fixtures/openapi/petstore-expanded.yaml' } })
    ]
  })
  await refused(t, gw, up, { method: 'POST', path: '/pets-inspected/pets', headers: json, body: `{"name":"${CANARY}","name":"Rex"}` }, 400, 'GW_INSPECT_BODY_INVALID', 'inspected route: a key twice is an invalid body')
  for (const prefix of ['/pets-off', '/pets-inspected']) {
    await passes(t, gw, up, { method: 'POST', path: `${prefix}/pets`, headers: json, body: '{"name":"Rex","tag":"dog","colour":"brown"}' }, '/api/pets', `${prefix}: declared members and one of its own`)
    if (prefix === '/pets-off') {
      // RFC 8259: JSON is UTF-8. A backend that honours the charset reads `+ACIAfQ-` (UTF-7) as `"}`.
      await passes(t, gw, up, { method: 'POST', path: `${prefix}/pets`, headers: { 'content-type': 'application/json; charset=UTF-8' }, body: '{"name":"Rex"}' }, '/api/pets', `${prefix}: charset=UTF-8`)
      for (const charset of ['utf-7', 'utf-16', 'iso-8859-1', '"utf-8"; charset=utf-7']) {
        await refused(t, gw, up, { method: 'POST', path: `${prefix}/pets`, headers: { 'content-type': `application/json; charset=${charset}` }, body: `{"name":"+ACIAfQ-${CANARY}"}` }, 415, 'GW_REQUEST_UNSUPPORTED_MEDIA_TYPE', `${prefix}: JSON declared as ${charset}`)
      }
      // JSON.parse keeps the last `name`; a first-wins parser reads the 65-character one.
      await refused(t, gw, up, { method: 'POST', path: `${prefix}/pets`, headers: json, body: `{"name":"${CANARY}${'x'.repeat(60)}","name":"Rex"}` }, 400, 'GW_CONTRACT_VIOLATION', `${prefix}: a key twice`, '/body: duplicate-key')
      await refused(t, gw, up, { method: 'POST', path: `${prefix}/pets`, headers: json, body: `{"name":"Rex","n\\u0061me":"${CANARY}"}` }, 400, 'GW_CONTRACT_VIOLATION', `${prefix}: a key twice, once escaped`, '/body: duplicate-key')
      await refused(t, gw, up, { method: 'POST', path: `${prefix}/pets`, headers: json, body: `{"name":"Rex","tag":{"a":1,"a":"${CANARY}"}}` }, 400, 'GW_CONTRACT_VIOLATION', `${prefix}: a key twice in a nested object`, '/body: duplicate-key')
    }
    // Go's encoding/json binds `NAME` to the field `name` (the last one read wins).
    await refused(t, gw, up, { method: 'POST', path: `${prefix}/pets`, headers: json, body: `{"name":"Rex","NAME":"${CANARY}${'x'.repeat(80)}"}` }, 400, 'GW_CONTRACT_VIOLATION', `${prefix}: the member in another case`, '/body/name: ambiguous')
    await refused(t, gw, up, { method: 'POST', path: `${prefix}/pets`, headers: json, body: `{"n\\u0041ME":"${CANARY}${'x'.repeat(80)}"}` }, 400, 'GW_CONTRACT_VIOLATION', `${prefix}: another case, escaped`, '/body/name: ambiguous')
  }
})

t.test('a URL found valid is remembered only where the URL alone decides', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { API_KEYS: `shop:${API_KEY}` },
    routes: [
      defineRoute({ prefix: '/shop', upstream: up.url, rewritePrefix: '/api', auth: false, rateLimit: false, openapi: { spec: '../fixtures/openapi/petstore-expanded.yaml' } }),
      defineRoute({ prefix: '/o', upstream: up.url, rewritePrefix: '/v2', auth: { strategies: ['apiKey'] }, rateLimit: false, openapi: { spec: '../fixtures/openapi/orders/orders.yaml' } })
    ]
  })
  for (let i = 0; i < 3; i++) {
    await passes(t, gw, up, { method: 'GET', path: '/shop/pets?limit=10' }, '/api/pets?limit=10', `a valid URL, time ${i + 1}`)
    await refused(t, gw, up, { method: 'GET', path: '/shop/pets?limit=1000' }, 400, 'GW_CONTRACT_VIOLATION', `an invalid URL, time ${i + 1}`, '/query/limit: maximum')
  }
  // GET /orders declares a header: the same URL without it is refused after it passed with it.
  await passes(t, gw, up, { method: 'GET', path: '/o/orders?page=3', headers: { 'x-api-key': API_KEY, 'x-tenant': 'acme-eu' } }, '/v2/orders?page=3', 'with the declared header')
  await refused(t, gw, up, { method: 'GET', path: '/o/orders?page=3', headers: { 'x-api-key': API_KEY } }, 400, 'GW_CONTRACT_VIOLATION', 'the same URL without it', '/header/x-tenant: required')
  await refused(t, gw, up, { method: 'GET', path: '/o/orders?page=3', headers: { 'x-api-key': API_KEY, 'x-tenant': 'ACME EU' } }, 400, 'GW_CONTRACT_VIOLATION', 'the same URL with an invalid header', '/header/x-tenant: pattern')
})

t.test('method overrides a backend framework would honour: _method in the query or the body', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { API_KEYS: `shop:${API_KEY}` },
    routes: [
      defineRoute({ prefix: '/shop', upstream: up.url, rewritePrefix: '/api', auth: false, rateLimit: false, inspect: false, openapi: { spec: '../fixtures/openapi/petstore-expanded.yaml' } }),
      defineRoute({ prefix: '/o', upstream: up.url, rewritePrefix: '/v2', auth: { strategies: ['apiKey'] }, rateLimit: false, inspect: false, openapi: { spec: '../fixtures/openapi/orders/orders.yaml' } })
    ]
  })
  const pet = '{"name":"Rex"}'
  await passes(t, gw, up, { method: 'POST', path: '/shop/pets?payment_method=x', headers: json, body: pet }, '/api/pets?payment_method=x', 'a name that only ends in _method')
  // Rails, Laravel/Symfony and Spring's HiddenHttpMethodFilter turn this POST into a DELETE.
  for (const spelling of ['_method', '_METHOD', '%5Fmethod', '+method', '.method', '_method[]']) {
    await refused(t, gw, up, { method: 'POST', path: `/shop/pets?${spelling}=DELETE`, headers: json, body: pet }, 400, 'GW_CONTRACT_VIOLATION', `query ${spelling}`, '/query/_method: method-override')
  }
  await refused(t, gw, up, { method: 'GET', path: '/shop/pets/1?_method=DELETE' }, 400, 'GW_CONTRACT_VIOLATION', 'an operation without query parameters', '/query/_method: method-override')
  await refused(t, gw, up, { method: 'POST', path: '/shop/pets', headers: json, body: '{"name":"Rex","_method":"DELETE"}' }, 400, 'GW_CONTRACT_VIOLATION', 'a JSON body (Laravel reads its input)', '/body/_method: method-override')
  await refused(t, gw, up, { method: 'POST', path: '/o/orders', headers: { 'x-api-key': API_KEY, 'x-tenant': 'acme-eu', 'content-type': 'application/x-www-form-urlencoded' }, body: 'sku=AB-1234&quantity=2&_method=DELETE' }, 400, 'GW_CONTRACT_VIOLATION', 'a form body', '/body/_method: method-override')
})
