/**
 * API keys over TCP, the whole gateway built from an environment (API_KEYS_FILE) in front of a
 * recording upstream: scopes on a scoped route, expiry, rotation, and the key file replaced the
 * way Kubernetes replaces a Secret volume (a new folder, then the `..data` symlink renamed over)
 * while requests keep flowing; and SIGHUP to the built process. Every rejection proves the
 * upstream received nothing.
 */
import t from 'tap'
import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defineRoute } from 'portcullis'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { runGateway } from '../helpers/process.js'
import { closedPort, startUpstream, type Upstream } from '../helpers/upstream.js'
import { waitFor } from '../helpers/wait-for.js'

const READER = 'reader-key-0123456789abcdef'
const WRITER = 'writer-key-0123456789abcdef'
const OLD = 'rotate-old-0123456789abcdef'
const NEW = 'rotate-new-0123456789abcdef'
const EXPIRED = 'expired-key-0123456789abcd'

/** A Secret-volume-like folder: `api-keys` -> `..data/api-keys`, `..data` -> `..<version>`. */
class SecretVolume {
  readonly dir = mkdtempSync(join(tmpdir(), 'portcullis-secret-'))
  readonly file = join(this.dir, 'api-keys')
  #version = 0

  constructor (text: string) {
    this.#write(text)
    symlinkSync('..data/api-keys', this.file)
  }

  #write (text: string): void {
    const version = `..v${++this.#version}`
    mkdirSync(join(this.dir, version))
    writeFileSync(join(this.dir, version, 'api-keys'), text)
    symlinkSync(version, join(this.dir, '..data_tmp'))
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'))
  }

  /** What the kubelet does on a Secret update: the new version appears in one rename. */
  update (text: string): void { this.#write(text) }
}

async function get (gw: TestGateway, path: string, key: string): Promise<{ status: number, headers: Headers, body: Record<string, unknown> }> {
  const res = await fetch(`${gw.url}${path}`, { headers: { 'x-api-key': key } })
  return { status: res.status, headers: res.headers, body: await res.json() as Record<string, unknown> }
}

async function gateway (t: Parameters<typeof startGateway>[0], file: string, upstream: Upstream): Promise<TestGateway> {
  return await startGateway(t, {
    env: { API_KEYS_FILE: file },
    routes: [
      defineRoute({ prefix: '/orders', upstream: upstream.url, retries: 0, rateLimit: false, auth: { strategies: ['apiKey'], scopes: ['orders:read'] } }),
      defineRoute({ prefix: '/admin', upstream: upstream.url, retries: 0, rateLimit: false, auth: { strategies: ['apiKey'], scopes: ['orders:read', 'orders:write'] } })
    ]
  })
}

t.test('scopes and expiry over TCP: a 403 for a missing scope carries no bearer challenge and reaches nothing', async (t) => {
  const upstream = await startUpstream(t)
  const volume = new SecretVolume([
    `reader:${READER} scopes=orders:read`,
    `writer:${WRITER} scopes=orders:read,orders:write expires=2999-01-01T00:00:00Z`,
    `gone:${EXPIRED} scopes=orders:read,orders:write expires=2001-01-01T00:00:00Z`
  ].join('\n'))
  const gw = await gateway(t, volume.file, upstream)

  const ok = await get(gw, '/orders/1', READER)
  t.equal(ok.status, 200)
  t.equal(upstream.requests.length, 1)
  t.equal(upstream.requests[0]?.headers['x-consumer-id'], 'reader', 'x-consumer-id upstream')
  t.equal(upstream.requests[0]?.headers['x-consumer-scopes'], 'orders:read', 'the key\'s scopes go upstream')
  t.equal(upstream.requests[0]?.headers['x-api-key'], undefined, 'the key never goes upstream')
  t.equal((await get(gw, '/admin/1', WRITER)).status, 200)
  t.equal(upstream.requests.length, 2)

  const denied = await get(gw, '/admin/1', READER)
  t.equal(denied.status, 403)
  t.strictSame(denied.body, { statusCode: 403, code: 'GW_AUTH_FORBIDDEN', error: 'Forbidden', message: 'Forbidden: missing scope orders:write' })
  t.equal(denied.headers.get('www-authenticate'), null, 'no Bearer challenge for an API key')
  const expired = await get(gw, '/orders/1', EXPIRED)
  t.equal(expired.status, 401)
  t.strictSame(expired.body, { statusCode: 401, code: 'GW_AUTH_UNAUTHORIZED', error: 'Unauthorized', message: 'Unauthorized' })
  t.equal(upstream.requests.length, 2, 'the upstream received nothing for either refusal')
  t.ok(gw.logs.some((l) => l.reason === 'insufficient_scope' && l.scope === 'orders:write'), 'the log names the missing scope')
  t.ok(gw.logs.some((l) => l.reason === 'key_expired'), 'the log says key_expired')
  t.notMatch(gw.logText(), new RegExp(`${READER}|${WRITER}|${EXPIRED}`), 'no key in the log')
})

t.test('rotation: a Secret update is picked up without restart while requests keep succeeding; a broken one keeps the keys', async (t) => {
  const upstream = await startUpstream(t)
  const volume = new SecretVolume(`orders:${OLD} scopes=orders:read\n`)
  const gw = await gateway(t, volume.file, upstream)
  t.equal((await get(gw, '/orders/1', NEW)).status, 401, 'the new key is unknown before the update')
  const sent = upstream.requests.length

  // Keep calling with the old key while the new one rolls out: no request may fail.
  const flow = { stop: false }
  const statuses: number[] = []
  const traffic = (async () => {
    while (!flow.stop) statuses.push((await get(gw, '/orders/1', OLD)).status)
  })()
  volume.update(`orders:${OLD} scopes=orders:read expires=2999-01-01T00:00:00Z\norders:${NEW} scopes=orders:read\n`)
  await waitFor(async () => (await get(gw, '/orders/1', NEW)).status === 200, { message: 'the new key to work' })
  flow.stop = true
  await traffic
  t.ok(statuses.length > 0)
  t.strictSame([...new Set(statuses)], [200], `every one of ${statuses.length} requests during the update succeeded`)
  t.equal(gw.app.portcullisAuth.apiKeyCount(), 2, 'two keys for one consumer')
  t.equal((await get(gw, '/orders/1', OLD)).status, 200, 'the old key still works')
  t.ok(upstream.requests.length > sent)
  t.ok(gw.logs.some((l) => l.msg === 'API keys reloaded' && l.apiKeys === 2), 'a log line says how many keys are loaded')

  volume.update(`orders:${NEW} scopes=orders:read\norders:oops-0123456789abcdef scopes=orders read\n`)
  await waitFor(() => gw.logs.some((l) => l.msg === 'API keys file not reloaded; the keys in use stay'), { message: 'the warning about the broken file' })
  const warn = gw.logs.find((l) => l.msg === 'API keys file not reloaded; the keys in use stay')
  t.match(warn, { level: 40, apiKeys: 2, problems: [`${volume.file} line 2: unexpected text among the attributes (write them as name=value: scopes=, expires=)`] })
  t.equal((await get(gw, '/orders/1', OLD)).status, 200, 'the keys in use stay after a broken update')
  t.equal((await get(gw, '/orders/1', NEW)).status, 200)
  t.notMatch(gw.logText(), /oops-0123456789|rotate-old|rotate-new/, 'no key in the log')

  // The old key retired: the next update drops it, and it stops working.
  volume.update(`orders:${NEW} scopes=orders:read\n`)
  await waitFor(async () => (await get(gw, '/orders/1', OLD)).status === 401, { message: 'the old key to be retired' })
  const before = upstream.requests.length
  t.equal((await get(gw, '/orders/1', OLD)).status, 401)
  t.equal(upstream.requests.length, before, 'the upstream received nothing for the retired key')
  t.equal((await get(gw, '/orders/1', NEW)).status, 200)
})

t.test('the process entry: SIGHUP re-reads API_KEYS_FILE and the gateway keeps serving', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'portcullis-sighup-')), 'api-keys')
  writeFileSync(file, `app:${OLD}\n`)
  const p = runGateway({ PORT: '0', API_KEYS_FILE: file, DEMO_UPSTREAM_PORT: String(await closedPort()) })
  t.teardown(() => { p.child.kill('SIGKILL') })
  const url = await waitFor(() => /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(p.out())?.[1], { message: `the gateway to listen: ${p.err()}` })
  const status = async (key: string): Promise<number> => (await fetch(`${url}/echo/hello`, { headers: { 'x-api-key': key } })).status
  t.equal(await status(OLD), 200)
  p.child.kill('SIGHUP')
  await waitFor(() => p.out().includes('"msg":"API keys re-read"'), { message: 'the SIGHUP log line' })
  t.match(p.out(), /"signal":"SIGHUP","status":"unchanged","apiKeys":1/)
  writeFileSync(file, `app:${OLD}\napp:${NEW}\n`)
  p.child.kill('SIGHUP')
  await waitFor(async () => await status(NEW) === 200, { message: 'the new key to work' })
  t.equal(await status(OLD), 200, 'SIGHUP did not end the process; both keys work')
  t.notMatch(p.out() + p.err(), /rotate-old|rotate-new/, 'no key in the output')
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
})
