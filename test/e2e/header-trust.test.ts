/**
 * Identity, client-address, certificate and routing headers a backend may trust: a client never
 * gets them through the gateway, in any spelling, on public and protected routes alike, from an
 * untrusted peer and from a TRUST_PROXY peer (which keeps only the forwarding headers). Over
 * TCP with raw requests (underscore names included) in front of a recording upstream.
 */
import t, { type Test } from 'tap'
import { defineRoute, loadConfig } from 'portcullis'
import Fastify from 'fastify'
import { proxyPlugin } from '../../plugins/proxy/index.js'
import { startUpstream, type RecordedRequest, type Upstream } from '../helpers/upstream.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { rawRequest, type RawResponse } from '../helpers/raw-http.js'

const API_KEY = 'header-trust-key-0123456789abcdef'

/** Names from the vendors' documentation (oauth2-proxy, Kong, Envoy/Istio, clouds, CDNs, mTLS, routing). */
const DOCUMENTED = [
  'X-Forwarded-User', 'X-Forwarded-Email', 'X-Forwarded-Groups', 'X-Forwarded-Preferred-Username', 'X-Forwarded-Access-Token',
  'X-Auth-Request-User', 'X-Auth-Request-Email', 'X-Auth-Request-Groups', 'X-Auth-Request-Preferred-Username', 'X-Auth-Request-Access-Token',
  'Remote-User', 'X-Remote-User', 'X-Remote-Group', 'X-Remote-Groups', 'Remote-Groups', 'Remote-Email', 'Remote-Name',
  'X-Authenticated-User', 'X-Auth-User', 'X-User', 'X-User-Id', 'X-Username', 'X-Webauth-User', 'X-Forwarded-Login',
  'X-Consumer-Id', 'X-Consumer-Username', 'X-Consumer-Custom-Id', 'X-Consumer-Scopes', 'X-Credential-Identifier', 'X-Anonymous-Consumer',
  'X-Authenticated-Userid', 'X-Authenticated-Scope', 'X-Userinfo', 'X-Id-Token', 'X-Access-Token',
  'X-Forwarded-Client-Cert', 'X-Envoy-Internal', 'X-Envoy-External-Address', 'X-Envoy-Original-Path', 'X-Istio-Attributes', 'X-Jwt-Payload',
  'X-Goog-Authenticated-User-Email', 'X-Goog-Authenticated-User-Id', 'X-Goog-Iap-Jwt-Assertion', 'X-Amzn-Oidc-Data', 'X-Amzn-Oidc-Identity',
  'X-Amzn-Oidc-Accesstoken', 'X-MS-Client-Principal', 'X-MS-Client-Principal-Name', 'X-MS-Client-Principal-Id', 'X-Apigateway-Api-Userinfo',
  'X-Endpoint-API-UserInfo', 'X-SSL-Client-Cert', 'X-SSL-Client-Verify', 'X-SSL-Client-S-DN', 'X-Client-Cert', 'X-Client-Certificate',
  'Ssl-Client-Cert', 'Ssl-Client-Verify', 'X-Client-Verify', 'X-Client-DN', 'Client-Cert', 'Client-Cert-Chain',
  'X-Real-IP', 'X-Client-IP', 'Client-IP', 'True-Client-IP', 'CF-Connecting-IP', 'Fastly-Client-IP', 'X-Cluster-Client-IP',
  'X-Original-Forwarded-For', 'X-Originating-IP', 'X-Remote-IP', 'X-Remote-Addr', 'X-ProxyUser-Ip', 'Akamai-Origin-Hop',
  'Forwarded', 'X-Forwarded-For', 'X-Forwarded-Proto', 'X-Forwarded-Host', 'X-Forwarded-Port', 'X-Forwarded-Prefix',
  'X-Original-URL', 'X-Rewrite-URL', 'X-Original-URI', 'X-Forwarded-Uri', 'X-Forwarded-Path', 'X-Original-Host', 'X-Host',
  'X-Forwarded-Server', 'X-Forwarded-Scheme', 'X-Scheme', 'X-Url-Scheme', 'X-Forwarded-Ssl', 'Front-End-Https',
  'X-Original-Method', 'X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override'
]

/** Names no list above spells out: the families and word rules must catch them. */
const UNLISTED = [
  'X-Proxy-User', 'X-Real-User', 'Remote-Roles', 'X-Authenticated-Email', 'X-Auth-Email', 'X-User-Email', 'X-User-Roles',
  'Cf-Access-Authenticated-User-Email', 'Cf-Access-Jwt-Assertion', 'X-Authentik-Username', 'X-Pomerium-Jwt-Assertion',
  'Tailscale-User-Login', 'Impersonate-User', 'Impersonate-Group', 'X-Real-Client-IP', 'Cf-Connecting-Ipv6', 'X-Azure-ClientIP',
  'CloudFront-Viewer-Address', 'WL-Proxy-Client-IP', 'Proxy-Client-IP', 'Shib-Identity-Provider', 'Iv-User', 'X-Arr-ClientCert',
  'X-Amzn-Mtls-Clientcert', 'Proxy', 'X-Scope-OrgID', 'X-Forwarded-Tls-Client-Cert', 'X-Verified-Email', 'X-Original-Client-IP',
  'X-Ms-Token-Aad-Id-Token', 'X-Appengine-User-Email', 'X-Vouch-User', 'X-Device-Principal', 'X-Source-IP'
]

/** The same headers as Apache/CGI or nginx (underscores_in_headers on) would map them. */
const UNDERSCORED = [
  'X_Forwarded_User', 'x-forwarded_user', 'REMOTE_USER', 'Remote_User', 'X_Real_IP', 'X_Forwarded_For', 'x_forwarded_proto',
  'X_Consumer_Id', 'x_auth_request_email', 'X_SSL_Client_Cert', 'OIDC_CLAIM_email', 'SM_USER', 'X_Original_URL', 'HTTP_X_FORWARDED_USER'
]

/** Operator-added (STRIP_REQUEST_HEADERS=X-Tenant-Id,X-Acme-*). */
const OPERATOR = ['X-Tenant-Id', 'x_tenant_id', 'X-Acme-Role', 'X-ACME-Anything']

const ALL = [...DOCUMENTED, ...UNLISTED, ...UNDERSCORED, ...OPERATOR]
const CANARY = 'spoofed-'

/** The forwarding headers, which a TRUST_PROXY peer may send (tested on their own below). */
const FORWARDING = new Set(['forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port'])

/** One raw GET per batch of 60 spoofed headers (under the gateway's 100-field limit). */
async function sendSpoofed (port: number, path: string, extra: string[], names: readonly string[]): Promise<RawResponse[]> {
  const out: RawResponse[] = []
  for (let i = 0; i < names.length; i += 60) {
    const lines = names.slice(i, i + 60).map((name, j) => `${name}: ${CANARY}${i + j}`)
    out.push(await rawRequest(port, [`GET ${path} HTTP/1.1`, 'Host: gw.test', 'Connection: close', 'X-Kept: yes', ...extra, ...lines, '', ''].join('\r\n')))
  }
  return out
}

/** Every header line the upstream received whose name or value is the client's spoofing. */
function leaks (requests: readonly RecordedRequest[]): string[] {
  const found: string[] = []
  const names = new Set(ALL.map((n) => n.toLowerCase()))
  for (const r of requests) {
    for (let i = 0; i < r.rawHeaders.length; i += 2) {
      const name = r.rawHeaders[i] as string
      const value = r.rawHeaders[i + 1] as string
      if (value.includes(CANARY) || (names.has(name.toLowerCase()) && !GATEWAY_SET.has(name.toLowerCase()))) found.push(`${name}: ${value}`)
    }
  }
  return found
}

/** Names the gateway itself writes upstream (with its own values). */
const GATEWAY_SET = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'forwarded', 'x-request-id', 'x-consumer-id', 'x-consumer-strategy', 'x-consumer-scopes'])

async function gateway (t: Test, trustProxy: string): Promise<{ gw: TestGateway, up: Upstream }> {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { API_KEYS: `partner-a:${API_KEY}`, TRUST_PROXY: trustProxy, STRIP_REQUEST_HEADERS: 'X-Tenant-Id, X-Acme-*' },
    routes: [
      defineRoute({ prefix: '/open', upstream: up.url, auth: false, rateLimit: false }),
      defineRoute({ prefix: '/svc', upstream: up.url, rateLimit: false })
    ]
  })
  return { gw, up }
}

for (const [peer, trustProxy] of [['an untrusted peer', '10.9.9.9/32'], ['a TRUST_PROXY peer', '127.0.0.1/32']] as const) {
  t.test(`from ${peer}: no identity, address, certificate or routing header reaches the upstream`, async (t) => {
    const { gw, up } = await gateway(t, trustProxy)
    const names = trustProxy.startsWith('127.') ? ALL.filter((n) => !FORWARDING.has(n.toLowerCase())) : ALL
    t.ok(names.length > 120, `${names.length} spellings`)

    for (const res of await sendSpoofed(gw.port, '/open/x', [], names)) t.equal(res.status, 200, 'public route answers')
    const open = up.requests.length
    t.equal(open, Math.ceil(names.length / 60))

    const denied = await sendSpoofed(gw.port, '/svc/x', [], names)
    for (const res of denied) t.equal(res.status, 401, 'protected route without a credential: 401')
    t.equal(up.requests.length, open, 'rejected requests never reached the upstream')

    for (const res of await sendSpoofed(gw.port, '/svc/x', [`X-Api-Key: ${API_KEY}`], names)) t.equal(res.status, 200, 'protected route with a key answers')
    t.equal(up.requests.length, open * 2)

    t.strictSame(leaks(up.requests), [], 'not one spoofed header line upstream')
    for (const [i, r] of up.requests.entries()) {
      t.equal(r.headers['x-kept'], 'yes', 'an ordinary header passes')
      t.equal(r.headers['x-consumer-id'], i < open ? undefined : 'partner-a', 'x-consumer-id only from the verified key')
      t.equal(r.headers['x-consumer-strategy'], i < open ? undefined : 'apiKey')
      t.equal(r.headers['x-api-key'], undefined, 'the key never goes upstream')
      t.equal(r.headers['x-forwarded-for'], '127.0.0.1', 'x-forwarded-for is the peer')
      t.equal(r.headers['x-forwarded-proto'], 'http')
      t.equal(r.headers['x-forwarded-host'], 'gw.test')
      t.equal(r.headers.forwarded, undefined)
      t.equal(r.headers['x-forwarded-port'], undefined)
      t.match(r.headers['x-request-id'], /^[0-9a-f-]{36}$/)
    }
  })
}

t.test('a TRUST_PROXY peer keeps only the forwarding headers, merged with its own hop', async (t) => {
  const { gw, up } = await gateway(t, '127.0.0.1/32')
  const forwarding = [
    'X-Forwarded-For: 203.0.113.7', 'X-Forwarded-Proto: https', 'X-Forwarded-Host: api.example.com', 'X-Forwarded-Port: 443',
    'Forwarded: for=203.0.113.7;proto=https;host=api.example.com'
  ]
  const identity = ['X-Forwarded-User: admin', 'X-Real-IP: 6.6.6.6', 'X-Forwarded-Prefix: /admin', 'X-Forwarded-Uri: /admin', 'X_Forwarded_For: 6.6.6.6', 'X-Consumer-Id: admin']
  const res = await rawRequest(gw.port, ['GET /open/x HTTP/1.1', 'Host: gw.test', 'Connection: close', ...forwarding, ...identity, '', ''].join('\r\n'))
  t.equal(res.status, 200)
  const h = up.requests[0]?.headers ?? {}
  t.equal(h['x-forwarded-for'], '203.0.113.7, 127.0.0.1', 'chain kept, peer appended')
  t.equal(h['x-forwarded-proto'], 'https')
  t.equal(h['x-forwarded-host'], 'api.example.com')
  t.equal(h['x-forwarded-port'], '443')
  t.equal(h.forwarded, 'for=203.0.113.7;proto=https;host=api.example.com, for=127.0.0.1', 'RFC 7239: the gateway appends its element')
  for (const name of ['x-forwarded-user', 'x-real-ip', 'x-forwarded-prefix', 'x-forwarded-uri', 'x_forwarded_for', 'x-consumer-id']) {
    t.equal(h[name], undefined, `${name} still dropped`)
  }
  t.equal(up.requests[0]?.rawHeaders.filter((n) => /forwarded.for/i.test(n)).length, 1, 'one x-forwarded-for line, the gateway\'s')
})

t.test('an untrusted peer cannot add to the forwarding chain', async (t) => {
  const { gw, up } = await gateway(t, '10.9.9.9/32')
  const res = await rawRequest(gw.port, ['GET /open/x HTTP/1.1', 'Host: gw.test', 'Connection: close', 'X-Forwarded-For: 203.0.113.7',
    'X-Forwarded-Proto: https', 'X-Forwarded-Host: evil.example', 'X-Forwarded-Port: 8443', 'Forwarded: for=203.0.113.7', '', ''].join('\r\n'))
  t.equal(res.status, 200)
  const h = up.requests[0]?.headers ?? {}
  t.equal(h['x-forwarded-for'], '127.0.0.1')
  t.equal(h['x-forwarded-proto'], 'http')
  t.equal(h['x-forwarded-host'], 'gw.test')
  t.equal(h['x-forwarded-port'], undefined)
  t.equal(h.forwarded, undefined)
})

t.test('STRIP_REQUEST_HEADERS and the stripRequestHeaders option refuse what is not a header name', async (t) => {
  for (const bad of ['X Tenant', 'X-A*b', '*', 'Host', 'content_length', 'Transfer-*', 'X-Ok,Bad Name']) {
    t.throws(() => loadConfig({ STRIP_REQUEST_HEADERS: bad }), { code: 'GW_CONFIG_INVALID', message: /STRIP_REQUEST_HEADERS/ }, bad)
  }
  t.strictSame(loadConfig({ STRIP_REQUEST_HEADERS: ' X-Tenant-Id , X-Acme-* ' }).stripRequestHeaders, ['X-Tenant-Id', 'X-Acme-*'])
  for (const opts of [{ stripRequestHeaders: ['bad name'] }, { trustProxy: ['all'] }, { trustProxy: ['10.0.0.0/33'] }]) {
    const app = Fastify({ logger: false })
    t.teardown(async () => { await app.close() })
    await t.rejects(async () => { await app.register(proxyPlugin, opts).ready() }, { code: 'GW_CONFIG_INVALID' }, JSON.stringify(opts))
  }
})
