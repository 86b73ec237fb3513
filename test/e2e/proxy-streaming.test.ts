/**
 * Streamed upstream responses over real TCP: backpressure from a client that does not read
 * reaches the upstream, a client that leaves aborts the upstream request, and informational
 * (1xx) answers before the final one are handled, in the shared proxy scope and in a route's
 * own proxy context alike.
 */
import t, { type Test } from 'tap'
import { request } from 'undici'
import { connect, type Socket } from 'node:net'
import type { ServerResponse } from 'node:http'
import { defineRoute } from 'portcullis'
import { startUpstream, type UpstreamHandler } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait-for.js'

async function gatewayFor (t: Test, handler: UpstreamHandler, route: Record<string, unknown>): Promise<{ url: string, port: number, requests: () => number }> {
  const up = await startUpstream(t, handler)
  const gw = await startGateway(t, { logLevel: 'warn', routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, ...route })] })
  return { url: gw.url, port: gw.port, requests: () => up.requests.length }
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Writes `chunk` until the response reports a full buffer or `total` bytes went out; returns bytes written. */
function writeUntilBlocked (res: ServerResponse, chunk: Buffer, total: number, state: { written: number, blocked: boolean }): void {
  while (state.written < total) {
    state.written += chunk.length
    if (!res.write(chunk)) {
      state.blocked = true
      res.once('drain', () => { state.blocked = false; writeUntilBlocked(res, chunk, total, state) })
      return
    }
  }
  res.end()
}

const MiB = 1024 * 1024

for (const where of ['shared proxy scope', 'route with its own proxy context (body inspection)']) {
  const route = where.startsWith('shared') ? {} : { inspect: { mode: 'block', body: true } }

  t.test(`${where}: a client that stops reading holds the upstream back; reading again gets every byte`, async (t) => {
    const total = 64 * MiB
    const chunk = Buffer.alloc(64 * 1024, 0x61)
    const state = { written: 0, blocked: false }
    const gw = await gatewayFor(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' }) // no length: streamed (chunked)
      writeUntilBlocked(res, chunk, total, state)
    }, route)
    const socket: Socket = connect(gw.port, '127.0.0.1')
    t.teardown(() => { socket.destroy() })
    await new Promise<void>((resolve) => socket.once('connect', resolve))
    socket.pause()
    socket.write('GET /svc/big HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n')
    await waitFor(() => state.blocked, { message: 'the upstream write to block' })
    // Then time for a gateway that ignored backpressure to go on reading: nothing to await.
    await sleep(500)
    // Socket buffers on both hops and the gateway's stream buffer hold a few MiB at most.
    t.ok(state.blocked, 'the upstream write blocked')
    t.ok(state.written < 24 * MiB, `upstream wrote ${(state.written / MiB).toFixed(1)} MiB of 64 while the client read nothing`)
    let received = 0
    socket.on('data', (d: Buffer) => { received += d.length })
    const closed = new Promise<void>((resolve) => socket.once('close', () => { resolve() }))
    socket.resume()
    await closed
    t.equal(state.written, total)
    t.ok(received > total, `the client got the whole body (${received} bytes with headers and chunk framing)`)
  })

  t.test(`${where}: a client that leaves mid-stream aborts the upstream request`, async (t) => {
    let upstreamClosed: () => void = () => {}
    const closed = new Promise<void>((resolve) => { upstreamClosed = resolve })
    let writes = 0
    const gw = await gatewayFor(t, (req, res) => {
      if (req.url === '/done') {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' })
        res.end('ok')
        return
      }
      res.writeHead(200, { 'content-type': 'text/plain' })
      const timer = setInterval(() => { writes++; res.write('tick\n') }, 10)
      res.on('close', () => { clearInterval(timer); upstreamClosed() })
    }, route)
    const res = await request(`${gw.url}/svc/ticks`)
    t.equal(res.statusCode, 200)
    const iterator = res.body[Symbol.asyncIterator]()
    const first = await iterator.next()
    t.match(String(first.value), /tick/)
    // Leaving the body: the client's stream and its connection are destroyed.
    await iterator.return?.()
    await closed
    t.pass('the upstream response was closed')
    const at = writes
    // Showing that no write follows: nothing to await.
    await sleep(100)
    t.equal(writes, at, 'the upstream stopped writing')
    const next = await request(`${gw.url}/svc/done`)
    t.equal(next.statusCode, 200, 'the gateway serves the next request')
    t.equal(await next.body.text(), 'ok')
  })

  t.test(`${where}: 103 Early Hints before the answer; the client gets the final response, buffered or streamed`, async (t) => {
    const gw = await gatewayFor(t, (req, res) => {
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' })
      if (req.url === '/sized') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '11' })
        res.end('{"ok":true}')
      } else {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end('{"streamed":true}')
      }
    }, route)
    const sized = await request(`${gw.url}/svc/sized`)
    t.equal(sized.statusCode, 200)
    t.equal(sized.headers['content-length'], '11')
    t.equal(await sized.body.text(), '{"ok":true}')
    const streamed = await request(`${gw.url}/svc/unsized`)
    t.equal(streamed.statusCode, 200)
    t.equal(await streamed.body.text(), '{"streamed":true}')
    t.equal(gw.requests(), 2)
  })
}
