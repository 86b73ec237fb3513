/**
 * Configuration reload in a real gateway process (SIGHUP, and POST /reload on the admin port):
 * route modules added, changed and removed; a broken module refused with the running routes
 * kept; no failed request and no dropped WebSocket across reloads under load; a new TLS
 * certificate served. The route folder lives inside the package (route modules import
 * 'portcullis', which resolves only there) and is removed afterwards.
 */
import t, { type Test } from 'tap'
import { X509Certificate } from 'node:crypto'
import { copyFileSync, mkdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { connect } from 'node:tls'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'undici'
import WebSocket, { WebSocketServer } from 'ws'
import { makeCert } from '../helpers/certs.js'
import { countLines, runGateway, sighup, type GatewayProcess } from '../helpers/process.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitFor } from '../helpers/wait-for.js'

let folders = 0

/** A fresh routes folder under test/fixtures (gitignored), removed in teardown. */
function routesDir (t: Test): string {
  const dir = fileURLToPath(new URL(`../fixtures/.tmp-reload-${process.pid}-${++folders}`, import.meta.url))
  mkdirSync(dir, { recursive: true })
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

function route (dir: string, name: string, options: string): void {
  writeFileSync(`${dir}/${name}`, `import { defineRoute } from 'portcullis'\nexport default defineRoute(${options})\n`)
}

function start (t: Test, env: Record<string, string>): GatewayProcess {
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: '0', LOG_BUFFER_BYTES: '0', ...env })
  t.teardown(() => { p.child.kill('SIGKILL') })
  return p
}

async function listening (p: GatewayProcess): Promise<string> {
  return await waitFor(() => {
    if (p.child.exitCode !== null) throw new Error(`gateway exited: ${p.out()} ${p.err()}`)
    return /Server listening at (https?:\/\/127\.0\.0\.1:\d+)/.exec(p.out())?.[1]
  }, { message: 'gateway listening' })
}

async function get (url: string): Promise<{ status: number, body: string }> {
  const res = await request(url)
  return { status: res.statusCode, body: await res.body.text() }
}

t.test('SIGHUP: added, changed and removed route modules; a broken one keeps the running routes', async (t) => {
  const one = await startUpstream(t, (_req, res) => { res.end('one') })
  const two = await startUpstream(t, (_req, res) => { res.end('two') })
  const dir = routesDir(t)
  route(dir, 'a.mjs', `{ prefix: '/a', upstream: '${one.url}', auth: false }`)
  const p = start(t, { ROUTES_DIR: dir, ADMIN_PORT: '0' })
  const url = await listening(p)
  t.strictSame(await get(`${url}/a/x`), { status: 200, body: 'one' })
  t.equal((await get(`${url}/b/x`)).status, 404)

  route(dir, 'a.mjs', `{ prefix: '/a', upstream: '${two.url}', auth: false }`)
  route(dir, 'b.mjs', `{ prefix: '/b', upstream: '${one.url}', auth: false }`)
  t.equal(await sighup(p), 'reloaded')
  t.strictSame(await get(`${url}/a/x`), { status: 200, body: 'two' }, 'the changed module is imported again')
  t.strictSame(await get(`${url}/b/x`), { status: 200, body: 'one' }, 'the added module serves')

  unlinkSync(`${dir}/b.mjs`)
  t.equal(await sighup(p), 'reloaded')
  t.equal((await get(`${url}/b/x`)).status, 404, 'the removed module no longer serves')

  writeFileSync(`${dir}/c.mjs`, "import { defineRoute } from 'portcullis'\nexport default defineRoute({ prefix: '/c', upstream: \n")
  t.equal(await sighup(p), 'refused')
  const warning = p.out().split('\n').find((line) => line.includes('configuration reload refused')) ?? ''
  t.match(JSON.parse(warning), { level: 40, msg: /c\.mjs.*syntax error/ }, 'one warning line names the file')
  t.strictSame(await get(`${url}/a/x`), { status: 200, body: 'two' }, 'the running routes keep serving')
  t.equal((await get(`${url}/c/x`)).status, 404)

  // The admin port: POST /reload from a loopback peer.
  unlinkSync(`${dir}/c.mjs`)
  route(dir, 'd.mjs', `{ prefix: '/d', upstream: '${one.url}', auth: false }`)
  const admin = await waitFor(() => /"url":"(http:\/\/127\.0\.0\.1:\d+)","msg":"metrics admin listener ready"/.exec(p.out())?.[1])
  const res = await request(`${admin}/reload`, { method: 'POST' })
  t.equal(res.statusCode, 200)
  t.strictSame(await res.body.json(), { ok: true, problems: [] })
  t.strictSame(await get(`${url}/d/x`), { status: 200, body: 'one' })
  t.equal((await request(`${admin}/metrics`)).statusCode, 200, 'metrics still served by the shared admin listener')
  t.equal((await request(`${admin}/reload`)).statusCode, 404, 'GET /reload is not an endpoint')

  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0, 'drains and exits cleanly after reloads')
})

t.test('under load: no failed request across 5 reloads, and a WebSocket opened before them keeps working', async (t) => {
  const server = createServer((_req, res) => { res.end('ok') })
  const wss = new WebSocketServer({ server })
  wss.on('connection', (ws) => { ws.on('message', (m) => { ws.send(m) }) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { wss.close(); server.closeAllConnections(); server.close() })
  const up = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const dir = routesDir(t)
  route(dir, 'api.mjs', `{ prefix: '/api', upstream: '${up}', auth: false, websocket: true }`)
  const p = start(t, { ROUTES_DIR: dir })
  const url = await listening(p)

  const ws = new WebSocket(`${url.replace('http', 'ws')}/api/chat`)
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  async function echo (text: string): Promise<string> {
    const reply = new Promise<string>((resolve) => { ws.once('message', (m: Buffer) => { resolve(m.toString()) }) })
    ws.send(text)
    return await reply
  }
  t.equal(await echo('before'), 'before')

  const agent = new Agent({ connections: 8 })
  t.teardown(async () => { await agent.close() })
  const progress = { reloads: 0 }
  let ok = 0
  const failures: string[] = []
  async function client (): Promise<void> {
    while (progress.reloads < 5) {
      try {
        const res = await request(`${url}/api/x`, { dispatcher: agent })
        await res.body.text()
        if (res.statusCode === 200) ok++
        else failures.push(String(res.statusCode))
      } catch (err) {
        failures.push((err as { code?: string }).code ?? String(err))
      }
    }
  }
  const clients = Array.from({ length: 8 }, client)
  for (let i = 0; i < 5; i++) {
    const before = ok
    await waitFor(() => ok > before + 50, { message: 'traffic flowing' })
    route(dir, 'api.mjs', `{ prefix: '/api', upstream: '${up}', auth: false, websocket: true, timeout: ${10_000 + i} }`)
    t.equal(await sighup(p), 'reloaded')
    progress.reloads++
  }
  await Promise.all(clients)
  t.strictSame(failures, [], `no failed request among ${ok + failures.length} during 5 reloads`)
  t.ok(ok > 250)
  t.equal(await echo('after'), 'after', 'the WebSocket opened before the reloads still relays')
  t.equal(ws.readyState, WebSocket.OPEN)
  ws.close()
})

/** The certificate a new TLS connection is served. */
async function servedCert (url: string): Promise<string> {
  const { hostname, port } = new URL(url)
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      const cert = socket.getPeerX509Certificate()
      socket.destroy()
      if (cert === undefined) reject(new Error('no certificate'))
      else resolve(cert.fingerprint256)
    })
    socket.once('error', reject)
  })
}

t.test('SIGHUP: a new TLS certificate is served to new connections', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const dir = routesDir(t)
  route(dir, 'a.mjs', `{ prefix: '/a', upstream: '${up.url}', auth: false }`)
  const first = makeCert()
  const second = makeCert()
  const certFile = `${dir}/.cert.pem`
  const keyFile = `${dir}/.key.pem`
  copyFileSync(first.certFile, certFile)
  copyFileSync(first.keyFile, keyFile)
  const p = start(t, { ROUTES_DIR: dir, TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile })
  const url = await listening(p)
  t.equal(await servedCert(url), new X509Certificate(first.cert).fingerprint256)

  writeFileSync(keyFile, 'not a key')
  t.equal(await sighup(p), 'refused', 'a broken key is refused')
  t.equal(await servedCert(url), new X509Certificate(first.cert).fingerprint256, 'the running certificate stays')

  copyFileSync(second.certFile, certFile)
  copyFileSync(second.keyFile, keyFile)
  t.equal(await sighup(p), 'reloaded')
  t.equal(await servedCert(url), new X509Certificate(second.cert).fingerprint256, 'the new certificate is served')
  const agent = new Agent({ connect: { ca: second.cert } })
  t.teardown(async () => { await agent.close() })
  const res = await request(`${url}/a/x`, { dispatcher: agent })
  t.equal(res.statusCode, 200)
  t.equal(await res.body.text(), 'ok')
})

t.test('WORKERS=2: SIGHUP to the primary reloads every worker', async (t) => {
  const one = await startUpstream(t, (_req, res) => { res.end('one') })
  const two = await startUpstream(t, (_req, res) => { res.end('two') })
  const dir = routesDir(t)
  route(dir, 'a.mjs', `{ prefix: '/a', upstream: '${one.url}', auth: false }`)
  const p = start(t, { ROUTES_DIR: dir, WORKERS: '2' })
  const url = await listening(p)
  await waitFor(() => countLines(p, 'Server listening at') === 2, { message: 'both workers listening' })
  route(dir, 'a.mjs', `{ prefix: '/a', upstream: '${two.url}', auth: false }`)
  p.child.kill('SIGHUP')
  await waitFor(() => countLines(p, 'configuration reloaded') === 2, { message: 'both workers reloaded' })
  for (let i = 0; i < 6; i++) {
    const res = await request(`${url}/a/x`, { reset: true })
    t.equal(await res.body.text(), 'two', 'every worker serves the new route')
  }
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
})
