/**
 * Upstream timeouts as deadlines in one shared sweep (plugins/proxy/deadlines.ts) instead of
 * undici's timer per request: the list itself, then the timeouts end to end over TCP: never
 * early, refreshed by every body chunk, suspended while the client holds the body back, no
 * deadline left armed after any outcome, and a client that leaves before the upstream answers
 * ends the upstream request without counting against the target.
 */
import t from 'tap'
import { Readable } from 'node:stream'
import { Agent, request } from 'undici'
import { defineRoute } from 'portcullis'
import { DeadlineList, upstreamDeadlines, type Deadlined } from '../../plugins/proxy/deadlines.js'
import { delayedEcho, rawUpstream, startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait-for.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

function item (name: string, expired: string[]): Deadlined {
  return { deadline: 0, prevDeadlined: null, nextDeadlined: null, armed: false, abandoned: () => false, expire () { expired.push(name) } }
}

t.test('the list: arm, move, disarm, sweep expires exactly the passed deadlines once', async (t) => {
  const list = new DeadlineList()
  const expired: string[] = []
  const [a, b, c] = [item('a', expired), item('b', expired), item('c', expired)] as [Deadlined, Deadlined, Deadlined]
  list.arm(a, 100)
  list.arm(b, 200)
  list.arm(c, 300)
  t.equal(list.size, 3)
  list.arm(b, 1000)
  t.equal(list.size, 3, 'arming an armed item moves its deadline, it is not linked twice')
  list.sweep(99)
  t.strictSame(expired, [], 'nothing expires before its deadline')
  list.sweep(300)
  t.strictSame(expired.sort(), ['a', 'c'], 'the passed deadlines expire')
  t.equal(list.size, 1)
  list.sweep(400)
  t.strictSame(expired.sort(), ['a', 'c'], 'an expired item is not expired again')
  list.disarm(b)
  list.disarm(b)
  t.equal(list.size, 0, 'disarm twice is harmless')
  list.sweep(5000)
  t.strictSame(expired.sort(), ['a', 'c'], 'a disarmed item never expires')
  // Unlinking from the middle, the head and the tail keeps the rest reachable.
  const xs = Array.from({ length: 5 }, (_, i) => item(`x${i}`, expired))
  for (const x of xs) list.arm(x, 10)
  list.disarm(xs[2] as Deadlined)
  list.disarm(xs[4] as Deadlined)
  list.disarm(xs[0] as Deadlined)
  t.equal(list.size, 2)
  list.sweep(10)
  t.strictSame(expired.filter((n) => n.startsWith('x')).sort(), ['x1', 'x3'])
  list.sweep()
})

t.test('the sweep also expires abandoned items, whatever their deadline', async (t) => {
  const list = new DeadlineList()
  const expired: string[] = []
  let gone = false
  const a: Deadlined = { ...item('a', expired), abandoned: () => gone }
  list.arm(a, 1e15)
  list.sweep(1000)
  t.strictSame(expired, [], 'wanted and not due: kept')
  gone = true
  list.sweep(1000)
  t.strictSame(expired, ['a'], 'abandoned: expired at the next sweep')
  t.equal(list.size, 0)
})

t.test('an item expiring during the sweep may disarm another without losing the rest', async (t) => {
  const list = new DeadlineList()
  const expired: string[] = []
  const others = Array.from({ length: 4 }, (_, i) => item(`o${i}`, expired))
  const first: Deadlined = { ...item('first', expired), expire () { expired.push('first'); list.disarm(others[2] as Deadlined) } }
  for (const o of others) list.arm(o, 50)
  list.arm(first, 50)
  list.sweep(50)
  list.sweep(50)
  t.strictSame(expired.sort(), ['first', 'o0', 'o1', 'o3'])
  t.equal(list.size, 0)
})

t.test('a response-header timeout never fires early, and fires near its time', async (t) => {
  const up = (await rawUpstream(t, (s) => {
    s.once('data', (d) => {
      // The upstream's delays are what is tested: well inside the timeout, and far past it.
      const wait = d.toString().includes('/late') ? 5000 : 500
      setTimeout(() => { s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok') }, wait)
    })
  })).url
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: up, auth: false, rateLimit: false, timeout: { headersMs: 1500, bodyIdleMs: 800 } })] })
  const onTime = await request(`${gw.url}/svc/ontime`)
  t.equal(onTime.statusCode, 200, 'headers after 500 ms of a 1500 ms timeout pass')
  t.equal(await onTime.body.text(), 'ok')
  const started = Date.now()
  const late = await request(`${gw.url}/svc/late`)
  const took = Date.now() - started
  t.equal(late.statusCode, 504, 'the timeout fired before the upstream\'s answer at 5 s')
  await late.body.text()
  t.ok(took >= 1500, `not before the timeout (${took} ms)`)
  t.equal(upstreamDeadlines.size, 0, 'no deadline left armed')
})

t.test('every body chunk pushes the body-idle deadline back', async (t) => {
  const up = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    let n = 0
    const timer = setInterval(() => {
      n++
      if (n < 6) res.write(`chunk${n};`)
      else { clearInterval(timer); res.end('end') }
    }, 200)
  })
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: false, timeout: { headersMs: 1000, bodyIdleMs: 1000 } })] })
  const res = await request(`${gw.url}/svc/trickle`)
  t.equal(res.statusCode, 200)
  t.equal(await res.body.text(), 'chunk1;chunk2;chunk3;chunk4;chunk5;end', 'a 1.2 s body with a chunk every 200 ms passes a 1 s idle timeout')
  t.equal(upstreamDeadlines.size, 0, 'no deadline left armed')
})

t.test('a client that holds a streamed body back is not an idle upstream', async (t) => {
  const big = Buffer.alloc(8 * 1024 * 1024, 'x')
  const up = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(big.length) })
    res.end(big)
  })
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: false, timeout: { headersMs: 1000, bodyIdleMs: 300 } })] })
  const res = await request(`${gw.url}/svc/big`)
  t.equal(res.statusCode, 200)
  // Read a little, then stop reading for well over the idle timeout: the gateway's buffers fill
  // and it pauses the upstream, which is then idle because of the client.
  const it = res.body[Symbol.asyncIterator]()
  let received = ((await it.next()).value as Buffer).length
  // Not reading is what is tested: nothing to await but time passing the idle timeout.
  await sleep(1200)
  for (;;) {
    const next = await it.next()
    if (next.done === true) break
    received += (next.value as Buffer).length
  }
  t.equal(received, big.length, 'the whole body arrives after the pause')
  t.equal(upstreamDeadlines.size, 0, 'no deadline left armed')
})

t.test('no deadline stays armed after errors, resets, client aborts and many requests', async (t) => {
  let hangs = 0
  const up = (await rawUpstream(t, (s) => {
    s.on('data', (d) => {
      const text = d.toString()
      if (text.includes('/hang')) hangs++
      if (text.includes('/reset')) s.destroy()
      else if (text.includes('/half')) s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\npart')
      else if (!text.includes('/hang')) s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok')
    })
  })).url
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: up, auth: false, rateLimit: false, timeout: { headersMs: 400, bodyIdleMs: 400 } })] })
  // The test's own client, closed before the gateway (teardowns run last first): its idle
  // keep-alive connections would otherwise hold the gateway's close() until they time out.
  const dispatcher = new Agent()
  t.teardown(async () => { await dispatcher.close() })
  await Promise.all(Array.from({ length: 200 }, async () => {
    const r = await request(`${gw.url}/svc/ok`, { dispatcher })
    await r.body.text()
  }))
  const reset = await request(`${gw.url}/svc/reset`, { dispatcher })
  t.equal(reset.statusCode, 502)
  await reset.body.text()
  const hang = await request(`${gw.url}/svc/hang`, { dispatcher })
  t.equal(hang.statusCode, 504)
  await hang.body.text()
  const half = await request(`${gw.url}/svc/half`, { dispatcher })
  await half.body.text().catch(() => {})
  // A client that leaves while the upstream has not answered.
  const controller = new AbortController()
  const gone = request(`${gw.url}/svc/hang`, { signal: controller.signal, dispatcher })
  await waitFor(() => hangs === 2, { message: 'the second /hang at the upstream' })
  controller.abort()
  await gone.catch(() => {})
  await waitFor(() => upstreamDeadlines.size === 0, { message: 'every deadline disarmed' })
  t.equal(upstreamDeadlines.size, 0, 'every exchange disarmed its deadline')
})

t.test('a client that leaves before the upstream answers ends the upstream request, and the target stays healthy', async (t) => {
  let closed = 0
  let opened = 0
  let slow = 0
  const up = (await rawUpstream(t, (s) => {
    opened++
    s.on('close', () => { closed++ })
    s.on('data', (d) => {
      if (d.toString().includes('/slow')) slow++
      if (!d.toString().includes('/slow')) s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok')
    })
  })).url
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: up, auth: false, rateLimit: false, timeout: { headersMs: 20_000, bodyIdleMs: 20_000 }, circuitBreaker: { failureThreshold: 2, cooldownMs: 60_000 } })] })
  const dispatcher = new Agent()
  t.teardown(async () => { await dispatcher.close() })
  // Five clients in turn ask for the slow path and leave once it reached the upstream: more than the circuit's
  // failure threshold, had their departures counted against the target.
  for (let i = 0; i < 5; i++) {
    const controller = new AbortController()
    const started = Date.now()
    const closedBefore = closed
    const gone = request(`${gw.url}/svc/slow`, { signal: controller.signal, dispatcher })
    await waitFor(() => slow === i + 1, { message: `the /slow request of client ${i + 1} at the upstream` })
    controller.abort()
    await gone.catch(() => {})
    await waitFor(() => closed > closedBefore && upstreamDeadlines.size === 0, { timeoutMs: 10_000, message: `client ${i + 1}'s upstream request ended` })
    t.ok(closed > closedBefore, `the upstream connection of client ${i + 1} was closed`)
    t.equal(upstreamDeadlines.size, 0, 'and its exchange ended')
    t.ok(Date.now() - started < 10_000, `well before the 20 s timeout (${Date.now() - started} ms)`)
  }
  t.equal(upstreamDeadlines.size, 0, 'no deadline left armed')
  const res = await request(`${gw.url}/svc/fast`, { dispatcher })
  t.equal(res.statusCode, 200, 'the target was not ejected: leaving clients are not its failures')
  t.equal(await res.body.text(), 'ok')
  t.ok(opened >= 6)
  const bad = gw.logs.filter((l) => (l.level as number) >= 40)
  t.strictSame(bad.map((l) => l.msg), [], 'no warning or error lines for clients that left')
  t.ok(gw.logs.some((l) => l.msg === 'client left before the upstream answered; upstream request ended'), 'a debug line says what happened')
})

t.test('a request whose body was read to its end is not abandoned while the upstream takes its time', async (t) => {
  // Regression: the request object of a POST is destroyed (autoDestroy) once its body has been
  // read, while its connection still waits for the answer; the sweep must look at the connection.
  const slow = await startUpstream(t, delayedEcho(700))
  const gw = await startGateway(t, {
    routes: [
      defineRoute({ prefix: '/stream', upstream: slow.url, auth: false, rateLimit: false, inspect: false, timeout: { headersMs: 20_000 } }),
      defineRoute({ prefix: '/inspected', upstream: slow.url, auth: false, rateLimit: false, inspect: { mode: 'block', body: true }, timeout: { headersMs: 20_000 } })
    ]
  })
  const dispatcher = new Agent()
  t.teardown(async () => { await dispatcher.close() })
  const json = JSON.stringify({ name: "O'Brien", items: [1, 2, 3], note: 'x'.repeat(3000) })
  const cases: Array<{ path: string, method: 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'GET', body?: string, chunked?: boolean }> = [
    { path: '/stream/orders', method: 'POST', body: json },
    { path: '/stream/orders', method: 'POST', body: json, chunked: true },
    { path: '/stream/orders/1', method: 'PUT', body: json },
    { path: '/stream/orders/1', method: 'DELETE' },
    { path: '/stream/orders/1', method: 'GET' },
    { path: '/inspected/orders', method: 'POST', body: json },
    { path: '/inspected/orders/1', method: 'PATCH', body: json }
  ]
  const results = await Promise.all(cases.map(async (c) => {
    const started = Date.now()
    const body = c.body === undefined ? undefined : c.chunked === true ? Readable.from([Buffer.from(c.body.slice(0, 100)), Buffer.from(c.body.slice(100))]) : c.body
    const res = await request(`${gw.url}${c.path}`, { method: c.method, body, headers: c.body === undefined ? {} : { 'content-type': 'application/json' }, dispatcher, headersTimeout: 10_000 })
    return { c, status: res.statusCode, body: await res.body.json() as { method: string, bodyBytes: number }, ms: Date.now() - started }
  }))
  for (const r of results) {
    const name = `${r.c.method} ${r.c.path}${r.c.chunked === true ? ' (chunked)' : ''}`
    t.equal(r.status, 200, `${name}: answered`)
    t.equal(r.body.method, r.c.method, `${name}: reached the upstream`)
    t.equal(r.body.bodyBytes, Buffer.byteLength(r.c.body ?? ''), `${name}: with its whole body`)
    t.ok(r.ms >= 690, `${name}: after the upstream's delay (${r.ms} ms)`)
  }
  t.equal(slow.requests.length, cases.length, 'each request reached the upstream once')
  t.notOk(gw.logs.some((l) => l.msg === 'client left before the upstream answered; upstream request ended'), 'no request was taken for abandoned')
  t.equal(upstreamDeadlines.size, 0, 'no deadline left armed')
})
