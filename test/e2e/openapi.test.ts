/**
 * API contracts end to end (real TCP, real upstream): three documents of different styles
 * (test/fixtures/openapi/SOURCES.md). Valid requests reach the upstream byte for byte; every kind
 * of violation is refused with the upstream receiving nothing, and no value is echoed.
 */
import t from 'tap'
import { createSigner } from 'fast-jwt'
import { defineRoute } from 'portcullis'
import { CANARY, passes, refused, send } from '../helpers/contract.js'
import { startGateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'

const API_KEY = 'contract-key-0123456789abcdef'
const SECRET = 'contract-secret-0123456789abcdef0123456789'
const signHs = createSigner({ key: SECRET, algorithm: 'HS256', noTimestamp: true })
const now = (): number => Math.floor(Date.now() / 1000)
const jwt = (scope: string): string => signHs({ sub: 'player-1', scope, iat: now(), exp: now() + 300 })

const json = { 'content-type': 'application/json' }

t.test('petstore-expanded (3.0, YAML, servers base path /api)', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    routes: [defineRoute({ prefix: '/shop', upstream: up.url, rewritePrefix: '/api', auth: false, rateLimit: false, openapi: { spec: '../fixtures/openapi/petstore-expanded.yaml' } })]
  })
  await passes(t, gw, up, { method: 'GET', path: '/shop/pets?tags=cat&tags=dog&limit=10' }, '/api/pets?tags=cat&tags=dog&limit=10', 'list with form-exploded tags')
  await passes(t, gw, up, { method: 'GET', path: '/shop/pets/42' }, '/api/pets/42', 'integer path id')
  await passes(t, gw, up, { method: 'DELETE', path: '/shop/pets/42' }, '/api/pets/42', 'delete')
  await passes(t, gw, up, { method: 'POST', path: '/shop/pets', headers: json, body: '{"name":"Rex","tag":null}' }, '/api/pets', 'new pet (nullable tag)')

  await refused(t, gw, up, { method: 'GET', path: '/shop/pets?limit=1000' }, 400, 'GW_CONTRACT_VIOLATION', 'limit over maximum', '/query/limit: maximum')
  await refused(t, gw, up, { method: 'GET', path: `/shop/pets?limit=${CANARY}` }, 400, 'GW_CONTRACT_VIOLATION', 'limit not an integer', '/query/limit: type')
  await refused(t, gw, up, { method: 'GET', path: `/shop/pets/${CANARY}` }, 400, 'GW_CONTRACT_VIOLATION', 'path id not an integer', '/path/id: type')
  await refused(t, gw, up, { method: 'POST', path: '/shop/pets', headers: json, body: `{"tag":"${CANARY}"}` }, 400, 'GW_CONTRACT_VIOLATION', 'required property missing', '/body/name: required')
  await refused(t, gw, up, { method: 'POST', path: '/shop/pets', headers: json, body: `{"name":"${'x'.repeat(65)}"}` }, 400, 'GW_CONTRACT_VIOLATION', 'name too long', '/body/name: maxLength')
  await refused(t, gw, up, { method: 'POST', path: '/shop/pets', headers: json, body: `{"name": ${CANARY}` }, 400, 'GW_CONTRACT_VIOLATION', 'not JSON', '/body: json')
  await refused(t, gw, up, { method: 'POST', path: '/shop/pets', headers: json }, 400, 'GW_CONTRACT_VIOLATION', 'required body missing', '/body: required')
  await refused(t, gw, up, { method: 'POST', path: '/shop/pets', headers: { 'content-type': 'text/plain' }, body: CANARY }, 415, 'GW_REQUEST_UNSUPPORTED_MEDIA_TYPE', 'undeclared media type')
  await refused(t, gw, up, { method: 'GET', path: '/shop/owners' }, 404, 'GW_CONTRACT_UNKNOWN_OPERATION', 'undeclared path')
  const res = await send(gw, { method: 'PUT', path: '/shop/pets/1', headers: json, body: '{}' })
  t.equal(res.status, 405, 'undeclared method: 405')
  t.equal(res.json.code, 'GW_CONTRACT_METHOD_NOT_ALLOWED')
  t.equal(res.headers.get('allow'), 'GET, DELETE', 'Allow lists the declared methods')
  t.equal(up.requests.filter((r) => r.method === 'PUT').length, 0, 'undeclared method: the upstream received nothing')
})

t.test('tictactoe (3.1, JSON, security requirements with scopes)', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { API_KEYS: `console:${API_KEY}`, JWT_SECRET: SECRET },
    routes: [defineRoute({ prefix: '/game', upstream: up.url, rateLimit: false, openapi: { spec: '../fixtures/openapi/tictactoe.json' } })]
  })
  const key = { 'x-api-key': API_KEY }
  await passes(t, gw, up, { method: 'GET', path: '/game/board', headers: key }, '/board', 'board with the API key')
  await passes(t, gw, up, { method: 'GET', path: '/game/board/2/3', headers: { authorization: `Bearer ${jwt('board:read')}` } }, '/board/2/3', 'square with a bearer token')
  await passes(t, gw, up, { method: 'PUT', path: '/game/board/1/1', headers: { authorization: `Bearer ${jwt('board:write')}`, ...json }, body: '"X"' }, '/board/1/1', 'a move')

  await refused(t, gw, up, { method: 'GET', path: '/game/board/2/3', headers: key }, 403, 'GW_CONTRACT_FORBIDDEN', 'API key where a bearer token is required')
  await refused(t, gw, up, { method: 'GET', path: '/game/board/4/1', headers: { authorization: `Bearer ${jwt('board:read')}` } }, 400, 'GW_CONTRACT_VIOLATION', 'row past maximum', '/path/row: maximum')
  await refused(t, gw, up, { method: 'PUT', path: '/game/board/1/1', headers: { authorization: `Bearer ${jwt('board:write')}`, ...json }, body: `"${CANARY}"` }, 400, 'GW_CONTRACT_VIOLATION', 'mark outside its enum', '/body: enum')
  await refused(t, gw, up, { method: 'GET', path: '/game/board' }, 401, 'GW_AUTH_UNAUTHORIZED', 'no credentials: the route\'s auth policy answers first')
})

t.test('orders (3.0 over three files: header, cookie, deepObject, readOnly, closed objects, forms)', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { API_KEYS: `shop:${API_KEY}` },
    routes: [defineRoute({ prefix: '/orders-svc', upstream: up.url, rewritePrefix: '/v2', auth: { strategies: ['apiKey'] }, rateLimit: false, openapi: { spec: '../fixtures/openapi/orders/orders.yaml' } })]
  })
  const h = { 'x-api-key': API_KEY, 'x-tenant': 'acme-eu' }
  const order = '{"customer":"ACME","lines":[{"sku":"AB-1234","quantity":2}],"note":null}'
  await passes(t, gw, up, { method: 'GET', path: '/orders-svc/orders?page=2&status=open,shipped&filter[minTotal]=5&filter[currency]=EUR', headers: { ...h, cookie: 'session=abc' } }, '/v2/orders?page=2&status=open,shipped&filter[minTotal]=5&filter[currency]=EUR', 'list with every parameter style')
  await passes(t, gw, up, { method: 'POST', path: '/orders-svc/orders', headers: { ...h, ...json }, body: order }, '/v2/orders', 'create (JSON)')
  await passes(t, gw, up, { method: 'POST', path: '/orders-svc/orders', headers: { ...h, 'content-type': 'application/x-www-form-urlencoded' }, body: 'sku=AB-1234&quantity=2&gift=true' }, '/v2/orders', 'create (form)')
  await passes(t, gw, up, { method: 'GET', path: '/orders-svc/orders/3fa85f64-5717-4562-b3fc-2c963f66afa6/lines/7', headers: h }, '/v2/orders/3fa85f64-5717-4562-b3fc-2c963f66afa6/lines/7', 'one line')
  await passes(t, gw, up, { method: 'GET', path: '/orders-svc/public/catalog?ids=1&ids=2', headers: { 'x-api-key': API_KEY } }, '/v2/public/catalog?ids=1&ids=2', 'security: [] operation, authenticated by the route')

  await refused(t, gw, up, { method: 'GET', path: '/orders-svc/orders', headers: { 'x-api-key': API_KEY } }, 400, 'GW_CONTRACT_VIOLATION', 'required header missing', '/header/x-tenant: required')
  await refused(t, gw, up, { method: 'GET', path: `/orders-svc/orders?status=open,${CANARY}`, headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'array item outside its enum', '/query/status/1: enum')
  await refused(t, gw, up, { method: 'GET', path: `/orders-svc/orders?filter[evil]=${CANARY}`, headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'deepObject with an undeclared key', '/query/filter: additionalProperties')
  await refused(t, gw, up, { method: 'GET', path: '/orders-svc/orders?page=0', headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'parameter from another file', '/query/page: minimum')
  await refused(t, gw, up, { method: 'GET', path: '/orders-svc/orders', headers: { ...h, cookie: `session=${'x'.repeat(65)}` } }, 400, 'GW_CONTRACT_VIOLATION', 'cookie too long', '/cookie/session: maxLength')
  await refused(t, gw, up, { method: 'POST', path: '/orders-svc/orders', headers: { ...h, ...json }, body: '{"id":"3fa85f64-5717-4562-b3fc-2c963f66afa6","customer":"ACME","lines":[{"sku":"AB-1234","quantity":2}]}' }, 400, 'GW_CONTRACT_VIOLATION', 'readOnly property in a request', '/body/id: readOnly')
  await refused(t, gw, up, { method: 'POST', path: '/orders-svc/orders', headers: { ...h, ...json }, body: `{"customer":"ACME","lines":[{"sku":"AB-1234","quantity":2}],"admin":"${CANARY}"}` }, 400, 'GW_CONTRACT_VIOLATION', 'undeclared property on a closed object', '/body: additionalProperties')
  await refused(t, gw, up, { method: 'POST', path: '/orders-svc/orders', headers: { ...h, ...json }, body: '{"customer":"ACME","lines":[{"sku":"AB-1234","quantity":1000}]}' }, 400, 'GW_CONTRACT_VIOLATION', 'nested schema in another file', '/body/lines/0/quantity: maximum')
  await refused(t, gw, up, { method: 'POST', path: '/orders-svc/orders', headers: { ...h, 'content-type': 'application/x-www-form-urlencoded' }, body: 'sku=AB-1234&quantity=0' }, 400, 'GW_CONTRACT_VIOLATION', 'form field below minimum', '/body/quantity: minimum')
  await refused(t, gw, up, { method: 'GET', path: `/orders-svc/orders/${CANARY}/lines/1`, headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'path parameter format', '/path/orderId: format')
  await refused(t, gw, up, { method: 'PATCH', path: '/orders-svc/orders/3fa85f64-5717-4562-b3fc-2c963f66afa6/lines/1', headers: { ...h, 'content-type': 'application/merge-patch+json' }, body: '{"quantity":3}' }, 403, 'GW_CONTRACT_FORBIDDEN', 'requirement of two schemes where one was verified')
  await refused(t, gw, up, { method: 'GET', path: '/orders-svc/public/catalog' }, 401, 'GW_AUTH_UNAUTHORIZED', 'security: [] does not open a protected route')
  await refused(t, gw, up, { method: 'GET', path: '/orders-svc/orders/list', headers: h }, 404, 'GW_CONTRACT_UNKNOWN_OPERATION', 'undeclared path under the base', undefined)
})
