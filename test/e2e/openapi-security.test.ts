/**
 * An operation's security requirements met by each strategy that can meet them, end to end:
 * opaque tokens from a real OAuth 2 server checked by introspection (bearer and `oauth2`
 * schemes, with scopes), and client certificates over real TLS (`mutualTLS`, OpenAPI 3.1). The
 * wrong caller gets 403 and the upstream nothing.
 */
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { defineRoute } from 'portcullis'
import { startGateway } from '../helpers/gateway.js'
import { introspectionEnv, startOidc } from '../helpers/oidc.js'
import { startUpstream } from '../helpers/upstream.js'
import { makeCa } from '../helpers/certs.js'

async function get (url: string, init: { headers?: Record<string, string>, dispatcher?: Agent } = {}): Promise<{ status: number, code: unknown }> {
  const res = await request(url, { headers: init.headers ?? {}, ...(init.dispatcher !== undefined ? { dispatcher: init.dispatcher } : {}) })
  const body = await res.body.json() as Record<string, unknown>
  return { status: res.statusCode, code: body.code }
}

t.test('introspected opaque tokens meet bearer and oauth2 requirements with their scopes', async (t) => {
  const idp = await startOidc(t, { accessTokenFormat: 'opaque', scopes: 'board:read board:write' })
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: introspectionEnv(idp),
    routes: [defineRoute({ prefix: '/game', upstream: up.url, auth: { strategies: ['introspection'] }, rateLimit: false, openapi: { spec: '../fixtures/openapi/tictactoe.json' } })]
  })
  const reader = await idp.getToken('board:read')
  const writer = await idp.getToken('board:write')
  t.notOk(reader.split('.').length === 3, 'opaque tokens')
  const auth = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

  // GET /board: an API key, or oauth2 with board:read.
  t.same(await get(`${gw.url}/game/board`, { headers: auth(reader) }), { status: 200, code: undefined }, 'oauth2 with board:read: passes')
  t.equal(up.requests.length, 1, 'the upstream received it')
  t.same(await get(`${gw.url}/game/board`, { headers: auth(writer) }), { status: 403, code: 'GW_CONTRACT_FORBIDDEN' }, 'oauth2 without board:read: 403')
  t.equal(up.requests.length, 1, 'the upstream received nothing')
  // GET /board/{row}/{column}: any bearer token.
  t.same(await get(`${gw.url}/game/board/1/1`, { headers: auth(writer) }), { status: 200, code: undefined }, 'a bearer requirement without scopes: passes')
  t.equal(up.requests.length, 2)
})

t.test('client certificates meet mutualTLS requirements; an API key does not', async (t) => {
  const ca = makeCa('Contract client CA')
  const server = ca.issue('localhost', { server: true, san: 'DNS:localhost,IP:127.0.0.1' })
  const alice = ca.issue('alice')
  const apiKey = 'contract-mtls-key-0123456789abcdef'
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-contract-mtls-'))
  const spec = join(dir, 'certs.json')
  writeFileSync(spec, JSON.stringify({
    openapi: '3.1.0',
    info: { title: 'certificates', version: '1' },
    components: { securitySchemes: { client: { type: 'mutualTLS' }, key: { type: 'apiKey', in: 'header', name: 'x-api-key' } } },
    paths: {
      '/ledger': { get: { security: [{ client: [] }], responses: { 200: { description: 'ok' } } } },
      '/audited': { get: { security: [{ client: ['auditor'] }], responses: { 200: { description: 'ok' } } } },
      '/keyed': { get: { security: [{ key: [] }], responses: { 200: { description: 'ok' } } } }
    }
  }))
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, TLS_CLIENT_CA_FILE: ca.certFile, API_KEYS: `bob:${apiKey}` },
    routes: [defineRoute({ prefix: '/bank', upstream: up.url, auth: { strategies: ['mtls', 'apiKey'] }, rateLimit: false, openapi: { spec } })]
  })
  const withCert = new Agent({ connect: { ca: ca.cert, servername: 'localhost', cert: alice.cert, key: alice.key } })
  const withoutCert = new Agent({ connect: { ca: ca.cert, servername: 'localhost' } })
  t.teardown(async () => { await withCert.close(); await withoutCert.close() })
  const base = `https://localhost:${gw.port}/bank`

  t.same(await get(`${base}/ledger`, { dispatcher: withCert }), { status: 200, code: undefined }, 'a verified certificate meets mutualTLS')
  t.equal(up.requests.length, 1)
  t.same(await get(`${base}/ledger`, { dispatcher: withoutCert, headers: { 'x-api-key': apiKey } }), { status: 403, code: 'GW_CONTRACT_FORBIDDEN' }, 'an API key does not')
  t.same(await get(`${base}/audited`, { dispatcher: withCert }), { status: 403, code: 'GW_CONTRACT_FORBIDDEN' }, 'roles listed: a certificate carries none')
  t.same(await get(`${base}/keyed`, { dispatcher: withCert }), { status: 403, code: 'GW_CONTRACT_FORBIDDEN' }, 'a certificate does not meet an apiKey scheme')
  t.equal(up.requests.length, 1, 'the refused ones reached nothing')
  t.same(await get(`${base}/keyed`, { dispatcher: withoutCert, headers: { 'x-api-key': apiKey } }), { status: 200, code: undefined }, 'the API key meets its own scheme')
})
