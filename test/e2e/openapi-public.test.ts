/**
 * API contracts from public OpenAPI documents, end to end (real TCP, real upstream): six documents
 * of different styles from @readme/oas-examples 8.2.2 (test/fixtures/openapi/SOURCES.md). For
 * each, valid requests reach the upstream byte for byte, and each kind of violation the document
 * can express (unknown path, undeclared method, parameters, JSON, form and multipart bodies,
 * undeclared media type, unmet security) is refused with the upstream receiving nothing.
 */
import t from 'tap'
import { createSigner } from 'fast-jwt'
import { defineRoute } from 'portcullis'
import { CANARY, multipart, passes, refused, send } from '../helpers/contract.js'
import { startGateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'

const API_KEY = 'public-docs-key-0123456789abcdef'
const SECRET = 'public-docs-secret-0123456789abcdef0123456789'
const signHs = createSigner({ key: SECRET, algorithm: 'HS256', noTimestamp: true })
const now = (): number => Math.floor(Date.now() / 1000)
const bearer = (scope = ''): Record<string, string> => ({ authorization: `Bearer ${signHs({ sub: 'user-1', scope, iat: now(), exp: now() + 300 })}` })
const env = { API_KEYS: `docs:${API_KEY}`, JWT_SECRET: SECRET }
const key = { 'x-api-key': API_KEY }
const json = { 'content-type': 'application/json' }
const form = { 'content-type': 'application/x-www-form-urlencoded' }
const doc = (name: string): string => `../fixtures/openapi/public/${name}`
/** The first bytes of a PNG and every byte value: a file part is passed as written. */
const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), Buffer.from(Array.from({ length: 256 }, (_, i) => i))])

t.test('Swagger Petstore (3.0, JSON; oauth2 and apiKey schemes, XML, form and multipart bodies)', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env,
    routes: [defineRoute({ prefix: '/petstore', upstream: up.url, rewritePrefix: '/v2', auth: { strategies: ['jwt', 'apiKey'] }, rateLimit: false, openapi: { spec: doc('petstore.json') } })]
  })
  const writer = bearer('write:pets read:pets')
  const pet = '{"name":"doggie","photoUrls":["https://example.com/photo.png"],"category":{"id":1,"name":"Dogs"},"tags":[{"id":1,"name":"good"}],"status":"available"}'
  const upload = multipart([{ name: 'additionalMetadata', value: 'front view' }, { name: 'file', value: PNG, filename: 'rex.png', type: 'image/png' }])
  await passes(t, gw, up, { method: 'GET', path: '/petstore/pet/findByStatus?status=available&status=pending', headers: writer }, '/v2/pet/findByStatus?status=available&status=pending', 'exploded array query, oauth2 scopes')
  await passes(t, gw, up, { method: 'GET', path: '/petstore/pet/42', headers: key }, '/v2/pet/42', 'apiKey scheme')
  await passes(t, gw, up, { method: 'POST', path: '/petstore/pet', headers: { ...writer, ...json }, body: pet }, '/v2/pet', 'new pet (JSON)')
  await passes(t, gw, up, { method: 'POST', path: '/petstore/pet', headers: { ...writer, 'content-type': 'application/xml' }, body: '<Pet><name>doggie</name></Pet>' }, '/v2/pet', 'new pet (XML: declared, passed unvalidated)')
  await passes(t, gw, up, { method: 'POST', path: '/petstore/pet/42', headers: { ...writer, ...form }, body: 'name=Rex&status=sold' }, '/v2/pet/42', 'update with a form')
  await passes(t, gw, up, { method: 'POST', path: '/petstore/pet/42/uploadImage', headers: { ...writer, 'content-type': upload.type }, body: upload.body }, '/v2/pet/42/uploadImage', 'image upload (multipart)')
  await passes(t, gw, up, { method: 'DELETE', path: '/petstore/pet/42', headers: { ...writer, api_key: 'legacy' } }, '/v2/pet/42', 'delete with a header parameter')
  await passes(t, gw, up, { method: 'POST', path: '/petstore/store/order', headers: { ...key, ...json }, body: '{"petId":42,"quantity":1,"shipDate":"2026-01-02T03:04:05Z","status":"placed","complete":false}' }, '/v2/store/order', 'order (no security requirement: the route\'s auth is the floor)')
  await passes(t, gw, up, { method: 'GET', path: '/petstore/user/login?username=jo&password=s3cret', headers: key }, '/v2/user/login?username=jo&password=s3cret', 'login')
  await passes(t, gw, up, { method: 'POST', path: '/petstore/user/createWithArray', headers: { ...key, ...json }, body: '[{"username":"jo","userStatus":1}]' }, '/v2/user/createWithArray', 'array body')

  await refused(t, gw, up, { method: 'GET', path: '/petstore/pets', headers: key }, 404, 'GW_CONTRACT_UNKNOWN_OPERATION', 'undeclared path')
  const res = await send(gw, { method: 'PATCH', path: '/petstore/pet/42', headers: { ...writer, ...json }, body: '{}' })
  t.equal(res.status, 405, 'undeclared method')
  t.equal(res.headers.get('allow'), 'GET, POST, DELETE')
  t.equal(up.requests.filter((r) => r.method === 'PATCH').length, 0, 'undeclared method: the upstream received nothing')
  await refused(t, gw, up, { method: 'GET', path: `/petstore/pet/${CANARY}`, headers: key }, 400, 'GW_CONTRACT_VIOLATION', 'path id not an integer', '/path/petId: type')
  await refused(t, gw, up, { method: 'GET', path: '/petstore/store/order/11', headers: key }, 400, 'GW_CONTRACT_VIOLATION', 'path id over its maximum', '/path/orderId: maximum')
  await refused(t, gw, up, { method: 'GET', path: `/petstore/pet/findByStatus?status=${CANARY}`, headers: writer }, 400, 'GW_CONTRACT_VIOLATION', 'query item outside its enum', '/query/status/0: enum')
  await refused(t, gw, up, { method: 'GET', path: '/petstore/user/login?username=jo', headers: key }, 400, 'GW_CONTRACT_VIOLATION', 'required query parameter missing', '/query/password: required')
  await refused(t, gw, up, { method: 'POST', path: '/petstore/pet', headers: { ...writer, ...json }, body: `{"name":"${CANARY}"}` }, 400, 'GW_CONTRACT_VIOLATION', 'required property missing', '/body/photoUrls: required')
  await refused(t, gw, up, { method: 'POST', path: '/petstore/pet', headers: { ...writer, ...json }, body: '{"id":7,"name":"doggie","photoUrls":[]}' }, 400, 'GW_CONTRACT_VIOLATION', 'readOnly id in a request', '/body/id: readOnly')
  await refused(t, gw, up, { method: 'POST', path: '/petstore/pet', headers: { ...writer, ...json }, body: `{"name":"doggie","photoUrls":[],"status":"${CANARY}"}` }, 400, 'GW_CONTRACT_VIOLATION', 'status outside its enum', '/body/status: enum')
  await refused(t, gw, up, { method: 'POST', path: '/petstore/pet', headers: { ...writer, ...json }, body: `{"name": ${CANARY}` }, 400, 'GW_CONTRACT_VIOLATION', 'not JSON', '/body: json')
  await refused(t, gw, up, { method: 'POST', path: '/petstore/pet', headers: { ...writer, 'content-type': 'text/plain' }, body: CANARY }, 415, 'GW_REQUEST_UNSUPPORTED_MEDIA_TYPE', 'undeclared media type')
  await refused(t, gw, up, { method: 'POST', path: '/petstore/pet/42', headers: { ...writer, ...form }, body: `name=Rex&name=${CANARY}` }, 400, 'GW_CONTRACT_VIOLATION', 'form field given twice where one string is declared', '/body/name: type')
  const twice = multipart([{ name: 'additionalMetadata', value: 'a' }, { name: 'additionalMetadata', value: CANARY }, { name: 'file', value: PNG, filename: 'rex.png', type: 'image/png' }])
  await refused(t, gw, up, { method: 'POST', path: '/petstore/pet/42/uploadImage', headers: { ...writer, 'content-type': twice.type }, body: twice.body }, 400, 'GW_CONTRACT_VIOLATION', 'multipart field given twice', '/body/additionalMetadata: type')
  await refused(t, gw, up, { method: 'POST', path: '/petstore/pet/42/uploadImage', headers: { ...writer, 'content-type': upload.type }, body: upload.body.subarray(0, upload.body.length - 40) }, 400, 'GW_CONTRACT_VIOLATION', 'unterminated multipart', '/body: multipart')
  await refused(t, gw, up, { method: 'GET', path: '/petstore/pet/42', headers: writer }, 403, 'GW_CONTRACT_FORBIDDEN', 'a token where the apiKey scheme is required')
  await refused(t, gw, up, { method: 'POST', path: '/petstore/pet', headers: { ...bearer('read:pets'), ...json }, body: pet }, 403, 'GW_CONTRACT_FORBIDDEN', 'a token without the write:pets scope')
  await refused(t, gw, up, { method: 'POST', path: '/petstore/pet', headers: { ...key, ...json }, body: pet }, 403, 'GW_CONTRACT_FORBIDDEN', 'an API key where oauth2 is required')
})

t.test('USPTO Data Set API (3.0, YAML; server URL with a variable, form search)', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    routes: [defineRoute({ prefix: '/uspto', upstream: up.url, rewritePrefix: '/ds-api', auth: false, rateLimit: false, openapi: { spec: doc('uspto.yaml') } })]
  })
  await passes(t, gw, up, { method: 'GET', path: '/uspto/' }, '/ds-api/', 'list of data sets (the base path itself)')
  await passes(t, gw, up, { method: 'GET', path: '/uspto/oa_citations/v1/fields' }, '/ds-api/oa_citations/v1/fields', 'fields')
  await passes(t, gw, up, { method: 'POST', path: '/uspto/oa_citations/v1/records', headers: form, body: 'criteria=patentApplicationNumber%3A09%2A&start=0&rows=100' }, '/ds-api/oa_citations/v1/records', 'search (form)')

  await refused(t, gw, up, { method: 'GET', path: '/uspto/oa_citations/v1' }, 404, 'GW_CONTRACT_UNKNOWN_OPERATION', 'undeclared path')
  await refused(t, gw, up, { method: 'GET', path: '/uspto/oa_citations/v1/records' }, 405, 'GW_CONTRACT_METHOD_NOT_ALLOWED', 'undeclared method')
  await refused(t, gw, up, { method: 'POST', path: '/uspto/oa_citations/v1/records', headers: form, body: `criteria=*:*&rows=${CANARY}` }, 400, 'GW_CONTRACT_VIOLATION', 'form field not an integer', '/body/rows: type')
  await refused(t, gw, up, { method: 'POST', path: '/uspto/oa_citations/v1/records', headers: form, body: 'start=0' }, 400, 'GW_CONTRACT_VIOLATION', 'required form field missing', '/body/criteria: required')
  await refused(t, gw, up, { method: 'POST', path: '/uspto/oa_citations/v1/records', headers: json, body: `{"criteria":"${CANARY}"}` }, 415, 'GW_REQUEST_UNSUPPORTED_MEDIA_TYPE', 'JSON where only a form is declared')
})

t.test('STAPI, the Star Trek API (3.0, JSON, 80 paths; query pagination, form searches)', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    routes: [defineRoute({ prefix: '/stapi', upstream: up.url, rewritePrefix: '/api/v1/rest', auth: false, rateLimit: false, openapi: { spec: doc('star-trek.json') } })]
  })
  await passes(t, gw, up, { method: 'GET', path: '/stapi/animal?uid=ANMA0000000001' }, '/api/v1/rest/animal?uid=ANMA0000000001', 'one animal')
  await passes(t, gw, up, { method: 'GET', path: '/stapi/spacecraft/search?pageNumber=0&pageSize=50' }, '/api/v1/rest/spacecraft/search?pageNumber=0&pageSize=50', 'a page of spacecraft')
  await passes(t, gw, up, { method: 'POST', path: '/stapi/animal/search?pageNumber=1&sort=name,ASC', headers: form, body: 'name=Tribble&earthAnimal=false&avian=true' }, '/api/v1/rest/animal/search?pageNumber=1&sort=name,ASC', 'search (form, booleans)')

  await refused(t, gw, up, { method: 'GET', path: '/stapi/tribble' }, 404, 'GW_CONTRACT_UNKNOWN_OPERATION', 'undeclared path')
  await refused(t, gw, up, { method: 'DELETE', path: '/stapi/animal?uid=ANMA0000000001' }, 405, 'GW_CONTRACT_METHOD_NOT_ALLOWED', 'undeclared method')
  await refused(t, gw, up, { method: 'GET', path: '/stapi/animal' }, 400, 'GW_CONTRACT_VIOLATION', 'required query parameter missing', '/query/uid: required')
  await refused(t, gw, up, { method: 'GET', path: `/stapi/animal/search?pageNumber=${CANARY}` }, 400, 'GW_CONTRACT_VIOLATION', 'page number not an integer', '/query/pageNumber: type')
  await refused(t, gw, up, { method: 'GET', path: '/stapi/animal/search?pageSize=3000000000' }, 400, 'GW_CONTRACT_VIOLATION', 'page size past int32', '/query/pageSize: format')
  await refused(t, gw, up, { method: 'POST', path: '/stapi/animal/search', headers: form, body: `earthAnimal=${CANARY}` }, 400, 'GW_CONTRACT_VIOLATION', 'form field not a boolean', '/body/earthAnimal: type')
  await refused(t, gw, up, { method: 'POST', path: '/stapi/animal/search', headers: json, body: '{"name":"Tribble"}' }, 415, 'GW_REQUEST_UNSUPPORTED_MEDIA_TYPE', 'JSON where only a form is declared')
})

t.test('ReadMe API (3.1, JSON; bearer scheme, nullable, anyOf, closed objects, multipart uploads)', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env,
    routes: [defineRoute({ prefix: '/readme', upstream: up.url, rewritePrefix: '/v2', auth: { strategies: ['jwt', 'apiKey'] }, rateLimit: false, openapi: { spec: doc('readme.json') } })]
  })
  const h = bearer()
  const image = multipart([{ name: 'file', value: PNG, filename: 'logo.png', type: 'image/png' }])
  const definition = multipart([{ name: 'schema', value: '{"openapi":"3.1.0","info":{"title":"x","version":"1"},"paths":{}}', filename: 'openapi.json', type: 'application/json' }, { name: 'upload_source', value: 'form' }])
  await passes(t, gw, up, { method: 'GET', path: '/readme/branches?page=1&per_page=10&sort_by=semver', headers: h }, '/v2/branches?page=1&per_page=10&sort_by=semver', 'branches')
  await passes(t, gw, up, { method: 'POST', path: '/readme/changelogs', headers: { ...h, ...json }, body: '{"title":"Release 1.2","type":"added","content":{"body":null},"metadata":{"image":{"uri":null}},"privacy":{"view":"public"}}' }, '/v2/changelogs', 'changelog with nullable fields set to null')
  await passes(t, gw, up, { method: 'POST', path: '/readme/branches', headers: { ...h, ...json }, body: '{"name":"v1.0.1"}' }, '/v2/branches', 'branch (second alternative of anyOf)')
  await passes(t, gw, up, { method: 'POST', path: '/readme/images', headers: { ...h, 'content-type': image.type }, body: image.body }, '/v2/images', 'image upload (multipart)')
  await passes(t, gw, up, { method: 'POST', path: '/readme/branches/stable/apis', headers: { ...h, 'content-type': definition.type }, body: definition.body }, '/v2/branches/stable/apis', 'API definition upload (multipart)')
  await passes(t, gw, up, { method: 'GET', path: '/readme/outbound_ips', headers: key }, '/v2/outbound_ips', 'security: [] operation with an API key')

  await refused(t, gw, up, { method: 'GET', path: '/readme/branches/stable/secrets', headers: h }, 404, 'GW_CONTRACT_UNKNOWN_OPERATION', 'undeclared path')
  await refused(t, gw, up, { method: 'PUT', path: '/readme/changelogs', headers: { ...h, ...json }, body: '{}' }, 405, 'GW_CONTRACT_METHOD_NOT_ALLOWED', 'undeclared method')
  await refused(t, gw, up, { method: 'GET', path: `/readme/projects/${'a'.repeat(31)}/apikeys`, headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'path parameter too long', '/path/subdomain: maxLength')
  await refused(t, gw, up, { method: 'GET', path: '/readme/branches?per_page=101', headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'page size over its maximum', '/query/per_page: maximum')
  await refused(t, gw, up, { method: 'GET', path: `/readme/branches?sort_by=${CANARY}`, headers: h }, 400, 'GW_CONTRACT_VIOLATION', 'sort outside its enum', '/query/sort_by: enum')
  await refused(t, gw, up, { method: 'POST', path: '/readme/changelogs', headers: { ...h, ...json }, body: `{"title":"x","admin":"${CANARY}"}` }, 400, 'GW_CONTRACT_VIOLATION', 'undeclared property on a closed object', '/body: additionalProperties')
  await refused(t, gw, up, { method: 'POST', path: '/readme/changelogs', headers: { ...h, ...json }, body: '{"type":"added"}' }, 400, 'GW_CONTRACT_VIOLATION', 'required title missing', '/body/title: required')
  await refused(t, gw, up, { method: 'POST', path: '/readme/changelogs', headers: { ...h, ...json }, body: '{"title":null}' }, 400, 'GW_CONTRACT_VIOLATION', 'null where nullable is not declared', '/body/title: type')
  const extra = multipart([{ name: 'file', value: PNG, filename: 'logo.png', type: 'image/png' }, { name: 'owner', value: CANARY }])
  await refused(t, gw, up, { method: 'POST', path: '/readme/images', headers: { ...h, 'content-type': extra.type }, body: extra.body }, 400, 'GW_CONTRACT_VIOLATION', 'undeclared part', '/body: additionalProperties')
  await refused(t, gw, up, { method: 'POST', path: '/readme/images', headers: { ...h, 'content-type': 'multipart/form-data' }, body: image.body }, 400, 'GW_CONTRACT_VIOLATION', 'multipart without a boundary', '/body: multipart')
  await refused(t, gw, up, { method: 'POST', path: '/readme/images', headers: { ...h, 'content-type': 'image/png' }, body: PNG }, 415, 'GW_REQUEST_UNSUPPORTED_MEDIA_TYPE', 'a raw image where multipart is declared')
  await refused(t, gw, up, { method: 'GET', path: '/readme/branches', headers: key }, 403, 'GW_CONTRACT_FORBIDDEN', 'an API key where the bearer scheme is required')
})

t.test('File uploads (3.0, JSON; binary media type, multipart with files and typed fields)', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    routes: [defineRoute({ prefix: '/uploads', upstream: up.url, auth: false, rateLimit: false, openapi: { spec: doc('file-uploads.json') } })]
  })
  const one = multipart([{ name: 'orderId', value: '12' }, { name: 'userId', value: '7' }, { name: 'documentFile', value: PNG, filename: 'scan.pdf', type: 'application/pdf' }])
  const many = multipart([{ name: 'filename', value: PNG, filename: 'a.png', type: 'image/png' }, { name: 'filename', value: 'plain text', filename: 'b.txt', type: 'text/plain' }])
  await passes(t, gw, up, { method: 'POST', path: '/uploads/anything/multipart-formdata', headers: { 'content-type': one.type }, body: one.body }, '/anything/multipart-formdata', 'one file and integer fields')
  await passes(t, gw, up, { method: 'PUT', path: '/uploads/anything/multipart-formdata', headers: { 'content-type': many.type }, body: many.body }, '/anything/multipart-formdata', 'several files under one name')
  await passes(t, gw, up, { method: 'POST', path: '/uploads/anything/image-png', headers: { 'content-type': 'image/png' }, body: PNG }, '/anything/image-png', 'a raw image')

  await refused(t, gw, up, { method: 'POST', path: '/uploads/anything/image-jpeg', headers: { 'content-type': 'image/jpeg' }, body: PNG }, 404, 'GW_CONTRACT_UNKNOWN_OPERATION', 'undeclared path')
  await refused(t, gw, up, { method: 'DELETE', path: '/uploads/anything/multipart-formdata' }, 405, 'GW_CONTRACT_METHOD_NOT_ALLOWED', 'undeclared method')
  const bad = multipart([{ name: 'orderId', value: CANARY }, { name: 'documentFile', value: PNG, filename: 'scan.pdf', type: 'application/pdf' }])
  await refused(t, gw, up, { method: 'POST', path: '/uploads/anything/multipart-formdata', headers: { 'content-type': bad.type }, body: bad.body }, 400, 'GW_CONTRACT_VIOLATION', 'multipart field not an integer', '/body/orderId: type')
  const noDisposition = Buffer.from(`--b0\r\nContent-Type: text/plain\r\n\r\n${CANARY}\r\n--b0--\r\n`)
  await refused(t, gw, up, { method: 'POST', path: '/uploads/anything/multipart-formdata', headers: { 'content-type': 'multipart/form-data; boundary=b0' }, body: noDisposition }, 400, 'GW_CONTRACT_VIOLATION', 'a part without Content-Disposition', '/body: multipart')
  await refused(t, gw, up, { method: 'POST', path: '/uploads/anything/image-png', headers: { 'content-type': 'image/jpeg' }, body: PNG }, 415, 'GW_REQUEST_UNSUPPORTED_MEDIA_TYPE', 'undeclared image type')
})

t.test('Parameter serialization (3.1, JSON; path label and matrix, delimited and deepObject queries, headers, cookies, multipart JSON parts)', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    routes: [defineRoute({ prefix: '/styles', upstream: up.url, auth: false, rateLimit: false, openapi: { spec: doc('parameters-style.json') } })]
  })
  await passes(t, gw, up, { method: 'GET', path: '/styles/anything/path/label/.blue/.blue,black/.name,Rex,description,dog' }, '/anything/path/label/.blue/.blue,black/.name,Rex,description,dog', 'label path parameters')
  await passes(t, gw, up, { method: 'GET', path: '/styles/anything/path/matrix/;primitive=blue/;array=blue,black/;object=name,Rex' }, '/anything/path/matrix/;primitive=blue/;array=blue,black/;object=name,Rex', 'matrix path parameters')
  await passes(t, gw, up, { method: 'GET', path: '/styles/anything/query/pipeDelimited?array=blue|black|brown' }, '/anything/query/pipeDelimited?array=blue|black|brown', 'pipe-delimited query')
  await passes(t, gw, up, { method: 'GET', path: '/styles/anything/query/deepObject?object[name]=Rex&object[description]=dog' }, '/anything/query/deepObject?object[name]=Rex&object[description]=dog', 'deepObject query')
  await passes(t, gw, up, { method: 'GET', path: '/styles/anything/headers/simple', headers: { primitive: 'blue', array: 'blue,black', object: 'name,Rex,description,dog' } }, '/anything/headers/simple', 'simple header parameters')
  const parts = multipart([{ name: 'primitive', value: 'blue' }, { name: 'array', value: 'blue' }, { name: 'array', value: 'black' }, { name: 'object', value: '{"foo":"a","bar":"b"}', type: 'application/json' }])
  await passes(t, gw, up, { method: 'POST', path: '/styles/anything/form-data', headers: { 'content-type': parts.type }, body: parts.body }, '/anything/form-data', 'multipart: a text part, an array of parts, a JSON object part')

  await refused(t, gw, up, { method: 'GET', path: '/styles/anything/path/label/.blue' }, 404, 'GW_CONTRACT_UNKNOWN_OPERATION', 'undeclared path')
  await refused(t, gw, up, { method: 'DELETE', path: '/styles/anything/query/deepObject' }, 405, 'GW_CONTRACT_METHOD_NOT_ALLOWED', 'undeclared method')
  const notJson = multipart([{ name: 'object', value: `{${CANARY}` }])
  await refused(t, gw, up, { method: 'POST', path: '/styles/anything/form-data', headers: { 'content-type': notJson.type }, body: notJson.body }, 400, 'GW_CONTRACT_VIOLATION', 'object part that is not JSON', '/body/object: json')
  const wrong = multipart([{ name: 'object', value: '{"foo":1}' }])
  await refused(t, gw, up, { method: 'POST', path: '/styles/anything/form-data', headers: { 'content-type': wrong.type }, body: wrong.body }, 400, 'GW_CONTRACT_VIOLATION', 'object part of the wrong shape', '/body/object/foo: type')
  await refused(t, gw, up, { method: 'POST', path: '/styles/anything/form-data', headers: { 'content-type': 'text/plain' }, body: CANARY }, 415, 'GW_REQUEST_UNSUPPORTED_MEDIA_TYPE', 'undeclared media type')
})
