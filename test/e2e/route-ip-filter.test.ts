/**
 * Per-route `ipFilter` and `allowedContentTypes` given to `defineRoute()`: enforced over TCP
 * before anything reaches the upstream (403 / 415, upstream hit counts unchanged), and invalid
 * values stop startup naming the option.
 */
import t from 'tap'
import { request } from 'undici'
import { defineRoute, type RouteOptions } from 'portcullis'
import { startGateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'

t.test('ipFilter per route: allowed clients pass, denied and unlisted ones get 403 and the upstream sees nothing', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    routes: [
      defineRoute({ prefix: '/open', upstream: up.url, auth: false, ipFilter: { allow: ['127.0.0.1/32'] } }),
      defineRoute({ prefix: '/denied', upstream: up.url, auth: false, ipFilter: { deny: ['127.0.0.0/8'] } }),
      defineRoute({ prefix: '/office', upstream: up.url, auth: false, ipFilter: { allow: ['10.0.0.0/8', '2001:db8::/32'] } }),
      defineRoute({ prefix: '/plain', upstream: up.url, auth: false })
    ]
  })
  const get = async (path: string): Promise<{ status: number, body: { code?: string } }> => {
    const res = await request(`${gw.url}${path}`)
    return { status: res.statusCode, body: await res.body.json() as { code?: string } }
  }
  t.equal((await get('/open/x')).status, 200, 'a client on the route allow list passes')
  t.equal(up.requests.length, 1)
  const denied = await get('/denied/x')
  t.equal(denied.status, 403, 'a client on the route deny list is refused')
  t.equal(denied.body.code, 'GW_IP_FORBIDDEN')
  t.equal((await get('/office/x')).status, 403, 'a client missing from the route allow list is refused')
  t.equal(up.requests.length, 1, 'the upstream received neither refused request')
  t.equal((await get('/plain/x')).status, 200, 'a route without lists is not filtered')
  t.equal(up.requests.length, 2)
})

t.test('allowedContentTypes per route: other body media types get 415 and the upstream sees nothing', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    routes: [defineRoute({ prefix: '/json', upstream: up.url, auth: false, allowedContentTypes: ['application/json'] })]
  })
  const post = async (type: string): Promise<number> => {
    const res = await request(`${gw.url}/json/items`, { method: 'POST', headers: { 'content-type': type }, body: '{"a":1}' })
    await res.body.text()
    return res.statusCode
  }
  t.equal(await post('text/plain'), 415, 'a text/plain body is refused')
  t.equal(await post('application/x-www-form-urlencoded'), 415, 'a form body is refused')
  t.equal(up.requests.length, 0, 'the upstream received neither')
  t.equal(await post('Application/JSON; charset=utf-8'), 200, 'the listed type passes, whatever its case and parameters')
  const get = await request(`${gw.url}/json/items`)
  await get.body.text()
  t.equal(get.statusCode, 200, 'a request without a body is not concerned')
  t.equal(up.requests.length, 2)
})

t.test('invalid ipFilter and allowedContentTypes stop startup naming the option and saying why', async (t) => {
  const bad = (o: unknown): RouteOptions => o as RouteOptions
  const cases: Array<[unknown, string]> = [
    [{ ipFilter: { allow: ['not-an-ip'] } }, 'ipFilter.allow.0: "not-an-ip" is not an IP address or CIDR (for example "10.0.0.0/8" or "2001:db8::1")'],
    [{ ipFilter: { deny: ['10.0.0.0/33'] } }, 'ipFilter.deny.0: "10.0.0.0/33" has an invalid prefix length (for example "10.0.0.0/8" or "2001:db8::1")'],
    [{ ipFilter: { block: ['10.0.0.1'] } }, 'ipFilter.block: Unexpected property'],
    [{ allowedContentTypes: ['json'] }, 'allowedContentTypes.0: must be a media type such as "application/json", without parameters'],
    [{ allowedContentTypes: [] }, 'allowedContentTypes: Expected array length to be greater or equal to 1']
  ]
  for (const [extra, problem] of cases) {
    const err = t.throws(() => defineRoute(bad({ prefix: '/a', upstream: 'http://127.0.0.1:1', auth: false, ...(extra as object) })), { code: 'GW_CONFIG_INVALID' }) as Error & { problems: string[] }
    t.strictSame(err.problems, [problem], JSON.stringify(extra))
    t.match(err.message, /route-ip-filter\.test\.ts/, 'names the file')
  }
})
