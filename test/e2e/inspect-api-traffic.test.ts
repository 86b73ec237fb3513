/**
 * False positives on real API traffic (issue "Request inspection II"), end to end over TCP: GitHub
 * webhook deliveries and OAuth loopback redirect URIs reach the upstream as sent, while the attack
 * shapes the same rules exist for are still refused before the upstream.
 */
import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { request } from 'undici'
import { defineRoute, proxyPlugin, gatewayErrorHandler, gatewayNotFoundHandler } from 'portcullis'
import { inspectPlugin } from '../../plugins/inspect/index.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

// A pull_request "opened" delivery in GitHub's documented shape (test/fixtures/webhooks/), with a
// Dependabot pull request: avatar URLs ending in `?v=4` and in a bare `?`, URI templates, Markdown with HTML.
const WEBHOOK = readFileSync(new URL('../fixtures/webhooks/github-pull-request.json', import.meta.url), 'utf8')

async function setup (t: Test): Promise<{ url: string, up: Upstream }> {
  const up = await startUpstream(t)
  const app = Fastify({ logger: false })
  app.setErrorHandler(gatewayErrorHandler)
  app.setNotFoundHandler(gatewayNotFoundHandler)
  // A generous engine budget: a verdict here must not depend on how busy the machine is (a timeout blocks).
  await app.register(inspectPlugin, { mode: 'block', timeoutMs: 10_000 })
  await app.register(proxyPlugin, { bodyLimit: 1024 * 1024, defaultRateLimit: false })
  await app.register(defineRoute({ prefix: '/hooks', upstream: up.url, auth: false, rateLimit: false, inspect: { mode: 'block', body: true } }))
  await app.register(defineRoute({ prefix: '/oauth', upstream: up.url, auth: false, rateLimit: false, inspect: { mode: 'block', body: true } }))
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const addr = app.server.address()
  return { url: `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`, up }
}

async function send (url: string, method: string, headers: Record<string, string>, body?: string): Promise<number> {
  const res = await request(url, { method, headers, ...(body !== undefined ? { body } : {}) })
  await res.body.dump()
  return res.statusCode
}

t.test('GitHub pull_request webhook deliveries reach the upstream byte for byte', async (t) => {
  const { url, up } = await setup(t)
  t.match(WEBHOOK, /"avatar_url": "https:\/\/avatars\.githubusercontent\.com\/u\/1\?v=4"/, 'the fixture has ordinary avatar URLs')
  t.match(WEBHOOK, /"avatar_url": "https:\/\/avatars\.githubusercontent\.com\/in\/29110\?"/, 'and avatar URLs ending in ?')
  const headers = { 'content-type': 'application/json', 'x-github-event': 'pull_request', 'x-github-delivery': '72d3162e-cc78-11e3-81ab-4c9367dc0958', 'x-hub-signature-256': 'sha256=d57c68ca6f92289e6987922ff26938930f6e66a2d161ef06abdf1859230aa23c', 'user-agent': 'GitHub-Hookshot/044aadd' }
  t.equal(await send(`${url}/hooks/github`, 'POST', headers, WEBHOOK), 200, 'JSON delivery')
  t.equal(up.requests[0]?.body.toString('utf8'), WEBHOOK)
  const form = 'payload=' + encodeURIComponent(WEBHOOK)
  t.equal(await send(`${url}/hooks/github`, 'POST', { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, form), 200, 'form-encoded delivery')
  t.equal(up.requests[1]?.body.toString('utf8'), form)
  const compact = JSON.stringify(JSON.parse(WEBHOOK))
  t.equal(await send(`${url}/hooks/github`, 'POST', headers, compact), 200, 'compact JSON delivery')
  t.equal(up.requests.length, 3)
})

t.test('the remote-inclusion and markup shapes are still refused', async (t) => {
  const { url, up } = await setup(t)
  const form = { 'content-type': 'application/x-www-form-urlencoded' }
  const json = { 'content-type': 'application/json' }
  const attacks: Array<[string, string, Record<string, string>, string | undefined]> = [
    ['GET', '/hooks/x?page=' + encodeURIComponent('https://evil.example/shell.txt?'), {}, undefined],
    ['POST', '/hooks/x', form, 'page=' + encodeURIComponent('http://evil.example/shell.txt??')],
    ['POST', '/hooks/x', json, '{"avatar_url":"http://203.0.113.7/shell.txt?"}'],
    ['POST', '/hooks/x', json, '{"body":"<details open ontoggle=alert(1)>"}'],
    ['POST', '/hooks/x', json, '{"body":"<a href=\\"javascript:alert(1)\\">x</a>"}'],
    ['POST', '/hooks/x', json, '{"body":"<a href=test onclick=alert(1)>x</a>"}']
  ]
  for (const [method, path, headers, body] of attacks) {
    t.equal(await send(url + path, method, headers, body), 403, `${path} ${body ?? ''}`)
  }
  t.equal(up.requests.length, 0, 'nothing reached the upstream')
})

t.test('OAuth authorize and token requests with loopback redirect URIs pass', async (t) => {
  const { url, up } = await setup(t)
  const loopbacks = ['http://localhost:3000/callback', 'http://127.0.0.1:8080/cb', 'http://[::1]:53682/', 'http://localhost/oauth2/callback']
  for (const uri of loopbacks) {
    const q = new URLSearchParams({ response_type: 'code', client_id: 'cli-4f2a', redirect_uri: uri, scope: 'openid profile', state: 'af0ifjsldkj', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })
    t.equal(await send(`${url}/oauth/authorize?${q.toString()}`, 'GET', {}), 200, `authorize ${uri}`)
    const token = new URLSearchParams({ grant_type: 'authorization_code', code: 'SplxlOBeZQQYbYS6WxSbIA', redirect_uri: uri, client_id: 'cli-4f2a', code_verifier: 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk' }).toString()
    t.equal(await send(`${url}/oauth/token`, 'POST', { 'content-type': 'application/x-www-form-urlencoded' }, token), 200, `token ${uri}`)
    t.equal(up.requests.at(-1)?.body.toString(), token, 'forwarded as sent')
  }
  const registration = JSON.stringify({ client_name: 'CLI', redirect_uris: ['http://127.0.0.1:8080/cb', 'http://localhost:3000/callback'], post_logout_redirect_uri: 'http://localhost:3000/', grant_types: ['authorization_code'] })
  t.equal(await send(`${url}/oauth/register`, 'POST', { 'content-type': 'application/json' }, registration), 200, 'dynamic client registration')
  t.equal(up.requests.length, loopbacks.length * 2 + 1)
})

t.test('internal URLs elsewhere, or loopback URIs that are more than a callback, are still refused', async (t) => {
  const { url, up } = await setup(t)
  const refused = [
    '/oauth/fetch?url=' + encodeURIComponent('http://127.0.0.1:8080/cb'),
    '/oauth/fetch?callback_host=' + encodeURIComponent('http://localhost:3000/callback'),
    '/oauth/authorize?redirect_uri=' + encodeURIComponent('http://169.254.169.254/latest/meta-data/'),
    '/oauth/authorize?redirect_uri=' + encodeURIComponent('http://127.0.0.1:8080/../../etc/passwd'),
    '/oauth/authorize?redirect_uri=' + encodeURIComponent('http://localhost:3000/cb?x=<script>alert(1)</script>'),
    '/oauth/authorize?redirect_uri=' + encodeURIComponent('gopher://127.0.0.1:6379/_FLUSHALL')
  ]
  for (const path of refused) t.equal(await send(url + path, 'GET', {}), 403, path)
  t.equal(up.requests.length, 0, 'nothing reached the upstream')
})
