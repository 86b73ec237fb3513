/**
 * One connection pool per upstream origin, whatever the number of routes: 300 route prefixes in
 * front of one upstream open about as many upstream connections as there are requests in flight
 * at once, not one pool (and its connections) per prefix. Different timeouts or origins get
 * pools of their own. Over real TCP, counting the upstream's accepted connections.
 */
import t from 'tap'
import { Agent, request } from 'undici'
import { defineRoute } from 'portcullis'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'

const PREFIXES = 300

t.test(`${PREFIXES} prefixes in front of one upstream share its connections`, async (t) => {
  const up = await startUpstream(t)
  let accepted = 0
  up.server.on('connection', () => { accepted++ })
  const routes = Array.from({ length: PREFIXES }, (_, i) =>
    defineRoute({ prefix: `/svc${i}`, upstream: up.url, auth: false, rateLimit: false, inspect: false }))
  const gw = await startGateway(t, { logLevel: 'warn', routes })
  const client = new Agent({ connections: 1 })
  t.teardown(() => client.close())

  // One at a time over every prefix: one upstream connection serves them all.
  for (let i = 0; i < PREFIXES; i++) {
    const res = await request(`${gw.url}/svc${i}/items`, { dispatcher: client })
    t.equal(res.statusCode, 200)
    const body = await res.body.json() as { url: string }
    if (body.url !== '/items') t.fail(`prefix ${i}: upstream got ${body.url}`)
  }
  t.equal(up.requests.length, PREFIXES)
  t.equal(accepted, 1, `${PREFIXES} prefixes, one request at a time: ${accepted} upstream connection(s)`)

  // Ten in flight at a time, spread over every prefix: connections follow concurrency.
  const many = new Agent({ connections: 10 })
  t.teardown(() => many.close())
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < PREFIXES) {
      const i = next++
      const res = await request(`${gw.url}/svc${i}/x`, { dispatcher: many })
      await res.body.dump()
      if (res.statusCode !== 200) t.fail(`prefix ${i}: ${res.statusCode}`)
    }
  }
  await Promise.all(Array.from({ length: 10 }, worker))
  t.equal(up.requests.length, 2 * PREFIXES)
  t.ok(accepted <= 11, `10 in flight over ${PREFIXES} prefixes: ${accepted} upstream connections in all`)
})

t.test('routes with another connect timeout or another origin get pools of their own', async (t) => {
  const a = await startUpstream(t)
  const b = await startUpstream(t)
  let acceptedA = 0
  let acceptedB = 0
  a.server.on('connection', () => { acceptedA++ })
  b.server.on('connection', () => { acceptedB++ })
  const gw = await startGateway(t, {
    logLevel: 'warn',
    routes: [
      defineRoute({ prefix: '/a1', upstream: a.url, auth: false, rateLimit: false, inspect: false }),
      defineRoute({ prefix: '/a2', upstream: a.url, auth: false, rateLimit: false, inspect: false }),
      defineRoute({ prefix: '/a3', upstream: a.url, timeout: { connectMs: 1234 }, auth: false, rateLimit: false, inspect: false }),
      defineRoute({ prefix: '/b1', upstream: b.url, auth: false, rateLimit: false, inspect: false })
    ]
  })
  for (const p of ['/a1', '/a2', '/a1', '/a2', '/a3', '/a3', '/b1', '/b1']) {
    const res = await request(`${gw.url}${p}/x`)
    t.equal(res.statusCode, 200)
    await res.body.dump()
  }
  t.equal(acceptedA, 2, 'a: one connection shared by /a1 and /a2, one for /a3 (its own connect timeout)')
  t.equal(acceptedB, 1, 'b: one connection')
})
