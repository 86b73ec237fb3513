import t, { type Test } from 'tap'
import { request } from 'undici'
import { connect } from 'node:net'
import { defineRoute, loadConfig } from 'portcullis'
import { startUpstream, type UpstreamHandler } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait-for.js'

// Small upstream responses are read whole and sent in one write; larger or unsized ones stream.

const sized = (body: string, extra: Record<string, string> = {}): UpstreamHandler => (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...extra })
  res.end(body)
}

async function gatewayFor (t: Test, handler: UpstreamHandler, env: Record<string, string> = {}, route: Record<string, unknown> = {}): Promise<{ url: string, requests: () => number }> {
  const up = await startUpstream(t, handler)
  const gw = await startGateway(t, { env, routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, ...route })] })
  return { url: gw.url, requests: () => up.requests.length }
}

function assertGeneric (t: Test, body: Record<string, unknown>, status: number, code: string): void {
  t.equal(body.statusCode, status)
  t.equal(body.code, code)
  t.strictSame(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
}

for (const where of ['shared proxy scope', 'route with its own proxy context (body inspection)']) {
  const route = where.startsWith('shared') ? {} : { inspect: { mode: 'block', body: true } }

  t.test(`${where}: a small response arrives byte for byte with the upstream's headers`, async (t) => {
    const body = JSON.stringify({ name: 'Zoë', items: [1, 2, 3], note: 'x'.repeat(500) })
    const gw = await gatewayFor(t, sized(body, { etag: '"v1"', 'cache-control': 'max-age=5', 'set-cookie': 'a=1; HttpOnly', server: 'nginx/1.0', 'x-powered-by': 'PHP' }), {}, route)
    const res = await request(`${gw.url}/svc/item`)
    t.equal(res.statusCode, 200)
    t.equal(await res.body.text(), body)
    t.equal(res.headers['content-length'], String(Buffer.byteLength(body)))
    t.equal(res.headers['content-type'], 'application/json')
    t.equal(res.headers.etag, '"v1"')
    t.equal(res.headers['cache-control'], 'max-age=5')
    t.equal(res.headers['set-cookie'], 'a=1; HttpOnly')
    t.equal(res.headers.server, undefined)
    t.equal(res.headers['x-powered-by'], undefined)
    t.equal(res.headers['x-content-type-options'], 'nosniff', 'security headers still set')
    t.equal(res.headers['transfer-encoding'], undefined, 'sent with its length, not chunked')
  })

  t.test(`${where}: an upstream reset inside a buffered body answers 502 without the upstream's headers`, async (t) => {
    const gw = await gatewayFor(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '400', etag: '"secret-version"', 'set-cookie': 'session=upstream' })
      res.write('{"partial":')
      setTimeout(() => { res.socket?.destroy() }, 20)
    }, {}, route)
    const res = await request(`${gw.url}/svc/item`)
    t.equal(res.statusCode, 502)
    assertGeneric(t, await res.body.json() as Record<string, unknown>, 502, 'GW_UPSTREAM_BAD_GATEWAY')
    t.equal(res.headers.etag, undefined, 'no upstream etag on the error')
    t.equal(res.headers['set-cookie'], undefined, 'no upstream cookie on the error')
    t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'the gateway\'s own headers stay')
    t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
  })
}

t.test('a stalled buffered body answers 504 at the body idle timeout', async (t) => {
  const gw = await gatewayFor(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' })
    res.write('partial')
  }, {}, { timeout: { headersMs: 2000, bodyIdleMs: 300 } })
  const res = await request(`${gw.url}/svc/slow`)
  t.equal(res.statusCode, 504, 'the body idle timeout fired (the upstream never sends the rest)')
  assertGeneric(t, await res.body.json() as Record<string, unknown>, 504, 'GW_UPSTREAM_TIMEOUT')
})

t.test('a response over RESPONSE_BUFFER_BYTES streams: the client has its first bytes before the upstream sends the rest', async (t) => {
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => { release = resolve })
  const gw = await gatewayFor(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '4096' })
    res.write('a'.repeat(2048))
    released.then(() => { res.end('b'.repeat(2048)) }, () => {})
  }, { RESPONSE_BUFFER_BYTES: '1024' })
  const res = await request(`${gw.url}/svc/big`)
  t.equal(res.statusCode, 200)
  let text = ''
  for await (const chunk of res.body) {
    if (text === '') release()
    text += (chunk as Buffer).toString()
  }
  t.equal(text, 'a'.repeat(2048) + 'b'.repeat(2048))
})

t.test('a response without a declared length streams (chunked), whatever its size', async (t) => {
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => { release = resolve })
  const gw = await gatewayFor(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write('data: one\n\n')
    released.then(() => { res.end('data: two\n\n') }, () => {})
  })
  const res = await request(`${gw.url}/svc/events`)
  let text = ''
  for await (const chunk of res.body) {
    if (text === '') release()
    text += (chunk as Buffer).toString()
  }
  t.equal(text, 'data: one\n\ndata: two\n\n')
})

t.test('a response without a content type gets none added', async (t) => {
  const gw = await gatewayFor(t, (_req, res) => {
    res.removeHeader('content-type')
    res.writeHead(200, { 'content-length': '5' })
    res.end('plain')
  })
  const res = await request(`${gw.url}/svc/x`)
  t.equal(await res.body.text(), 'plain')
  t.equal(res.headers['content-type'], undefined)
})

t.test('HEAD keeps the upstream content-length and has no body; 204 and 304 pass through', async (t) => {
  const gw = await gatewayFor(t, (req, res) => {
    if (req.url === '/none') { res.writeHead(204); res.end(); return }
    if (req.url === '/same') { res.writeHead(304, { etag: '"v1"' }); res.end(); return }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '13' })
    res.end(req.method === 'HEAD' ? undefined : '{"ok":"yes!"}')
  })
  const head = await request(`${gw.url}/svc/x`, { method: 'HEAD' })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['content-length'], '13')
  t.equal(await head.body.text(), '')
  const get = await request(`${gw.url}/svc/x`)
  t.equal(await get.body.text(), '{"ok":"yes!"}')
  const none = await request(`${gw.url}/svc/none`)
  t.equal(none.statusCode, 204)
  t.equal(await none.body.text(), '')
  const same = await request(`${gw.url}/svc/same`)
  t.equal(same.statusCode, 304)
  t.equal(same.headers.etag, '"v1"')
})

t.test('RESPONSE_BUFFER_BYTES=0 streams every response (a reset mid-body cuts the client\'s 200)', async (t) => {
  const gw = await gatewayFor(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '400' })
    res.write('{"partial":')
    setTimeout(() => { res.socket?.destroy() }, 20)
  }, { RESPONSE_BUFFER_BYTES: '0' })
  const res = await request(`${gw.url}/svc/item`)
  t.equal(res.statusCode, 200, 'headers went out before the body was complete')
  await t.rejects(res.body.text())
})

t.test('a client that leaves while a body is buffered does not disturb the gateway', async (t) => {
  let finish: () => void = () => {}
  const finished = new Promise<void>((resolve) => { finish = resolve })
  let slowClosed = false
  const gw = await gatewayFor(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '10' })
    if (req.url === '/slow') {
      res.on('close', () => { slowClosed = true })
      res.write('12345')
      finished.then(() => { res.end('67890') }, () => {})
      return
    }
    res.end('0123456789')
  })
  const { port } = new URL(gw.url)
  await new Promise<void>((resolve) => {
    const s = connect(Number(port), '127.0.0.1', () => {
      s.write('GET /svc/slow HTTP/1.1\r\nhost: x\r\n\r\n')
      waitFor(() => gw.requests() === 1, { message: 'the request at the upstream' }).then(() => { s.destroy(); resolve() }, () => {})
    })
  })
  finish()
  await waitFor(() => slowClosed, { message: 'the upstream response to the departed client closed' })
  const res = await request(`${gw.url}/svc/fast`)
  t.equal(res.statusCode, 200)
  t.equal(await res.body.text(), '0123456789')
  t.equal(gw.requests(), 2)
})

t.test('RESPONSE_BUFFER_BYTES is validated at startup', async (t) => {
  t.equal(loadConfig({}).responseBufferBytes, 16_384, 'default 16 KiB')
  t.equal(loadConfig({ RESPONSE_BUFFER_BYTES: '0' }).responseBufferBytes, 0)
  for (const bad of ['-1', 'lots', '1.5', String(8 * 1024 * 1024 + 1)]) {
    t.throws(() => loadConfig({ RESPONSE_BUFFER_BYTES: bad }), { code: 'GW_CONFIG_INVALID', message: /RESPONSE_BUFFER_BYTES/ }, bad)
  }
})

t.test('the proxy plugin refuses a bad responseBufferBytes at ready()', async (t) => {
  const { default: Fastify } = await import('fastify')
  const { proxyPlugin } = await import('portcullis')
  for (const bad of [-1, 1.5, 8 * 1024 * 1024 + 1]) {
    const app = Fastify()
    app.register(proxyPlugin, { responseBufferBytes: bad })
    await t.rejects(async () => { await app.ready() }, { code: 'GW_CONFIG_INVALID', message: /responseBufferBytes/ }, String(bad))
    await app.close()
  }
})
