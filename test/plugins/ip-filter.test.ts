import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { gatewayErrorHandler, gatewayNotFoundHandler } from '../../src/errors.js'
import { ipFilterPlugin, type IpFilterPluginOptions, type IpFilterRouteConfig } from '../../plugins/ip-filter/index.js'
import { clientKeyOf, INVALID_CLIENT_KEY, normalizeIp } from '../../lib/client-ip.js'

const FORBIDDEN = { statusCode: 403, code: 'GW_IP_FORBIDDEN', error: 'Forbidden', message: 'Forbidden' }

interface Harness { app: FastifyInstance, hits: () => number }

async function build (t: Test, options: IpFilterPluginOptions, route: { ipFilter?: IpFilterRouteConfig, allowedContentTypes?: string[] } = {}, trustProxy: string[] | false = false): Promise<Harness> {
  const app = Fastify({ trustProxy })
  app.setErrorHandler(gatewayErrorHandler)
  app.setNotFoundHandler(gatewayNotFoundHandler)
  await app.register(ipFilterPlugin, options)
  let hits = 0
  app.route({ method: ['GET', 'POST'], url: '/filtered', config: route, handler: async () => { hits++; return { ok: true } } })
  app.route({ method: ['GET', 'POST'], url: '/open', handler: async () => { hits++; return { ok: true } } })
  t.teardown(() => app.close())
  await app.ready()
  return { app, hits: () => hits }
}

async function status (h: Harness, url: string, remoteAddress: string, headers: Record<string, string> = {}): Promise<number> {
  return (await h.app.inject({ url, remoteAddress, headers })).statusCode
}

t.test('client address normalisation', async (t) => {
  t.equal(normalizeIp('192.0.2.1'), '192.0.2.1')
  t.equal(normalizeIp('::ffff:192.0.2.1'), '192.0.2.1')
  t.equal(normalizeIp('::FFFF:192.0.2.1'), '192.0.2.1')
  t.equal(normalizeIp('::ffff:c000:201'), '192.0.2.1', 'hex form of a mapped address')
  t.equal(normalizeIp('0:0:0:0:0:ffff:192.0.2.1'), '192.0.2.1')
  t.equal(normalizeIp('2001:DB8::1'), '2001:db8::1')
  t.equal(normalizeIp('fe80::1%eth0'), 'fe80::1')
  t.equal(normalizeIp('not-an-ip'), undefined)
  t.equal(normalizeIp('1.2.3'), undefined)
  t.equal(clientKeyOf('192.0.2.1'), '192.0.2.1')
  t.equal(clientKeyOf('::ffff:192.0.2.1'), '192.0.2.1')
  t.equal(clientKeyOf('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64')
  t.equal(clientKeyOf('2001:0db8:0001:0002::'), '2001:db8:1:2::/64')
  t.equal(clientKeyOf('2001:db8::'), '2001:db8:0:0::/64')
  t.equal(clientKeyOf('::1'), '0:0:0:0::/64')
  t.equal(clientKeyOf('::'), '0:0:0:0::/64')
  t.equal(clientKeyOf('2001:db8:1::2:3:4'), '2001:db8:1:0::/64')
  t.equal(clientKeyOf('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64', 'embedded IPv4 tail')
  t.equal(clientKeyOf('garbage'), INVALID_CLIENT_KEY)
  t.equal(clientKeyOf('2001:db8::zz'), INVALID_CLIENT_KEY)
})

t.test('gateway deny list: IPv4 and IPv6 CIDRs, mapped addresses, generic 403, handler not hit', async (t) => {
  const h = await build(t, { deny: ['198.51.100.0/24', '2001:db8:bad::/48', '192.0.2.7'] })
  for (const ip of ['198.51.100.1', '::ffff:198.51.100.200', '2001:db8:bad:1::1', '192.0.2.7', '::ffff:192.0.2.7']) {
    const res = await h.app.inject({ url: '/open', remoteAddress: ip })
    t.equal(res.statusCode, 403, ip)
    t.strictSame(res.json(), FORBIDDEN)
  }
  t.equal(await status(h, '/nope', '198.51.100.1'), 403, 'also before routing (404s)')
  t.equal(h.hits(), 0)
  for (const ip of ['198.51.101.1', '2001:db8:bad0::1', '192.0.2.8', '::1']) t.equal(await status(h, '/open', ip), 200, ip)
  t.equal(h.hits(), 4)
})

t.test('gateway allow list: only listed clients; the deny list wins', async (t) => {
  const h = await build(t, { allow: ['10.0.0.0/8', '2001:db8::/32', '::ffff:172.16.0.1'], deny: ['10.6.6.6'] })
  for (const ip of ['10.1.2.3', '::ffff:10.1.2.3', '2001:db8:ffff::1', '172.16.0.1']) t.equal(await status(h, '/open', ip), 200, `${ip} allowed`)
  for (const ip of ['11.0.0.1', '2001:db9::1', '10.6.6.6', '::ffff:10.6.6.6', '172.16.0.2']) t.equal(await status(h, '/open', ip), 403, `${ip} refused`)
  t.equal(h.hits(), 4)
})

t.test('per-route lists apply to that route only, after the gateway lists', async (t) => {
  const h = await build(t, { deny: ['203.0.113.66'] }, { ipFilter: { allow: ['192.0.2.0/24', 'fd00::/8'], deny: ['192.0.2.13'] } })
  t.equal(await status(h, '/filtered', '192.0.2.1'), 200)
  t.equal(await status(h, '/filtered', 'fd12:3456::1'), 200)
  t.equal(await status(h, '/filtered', '192.0.2.13'), 403, 'route deny')
  t.equal(await status(h, '/filtered', '198.51.100.1'), 403, 'not on the route allow list')
  t.equal(await status(h, '/open', '198.51.100.1'), 200, 'another route is untouched')
  t.equal(await status(h, '/open', '203.0.113.66'), 403, 'gateway deny everywhere')
  t.equal(h.hits(), 3)
})

t.test('TRUST_PROXY: the forwarded address counts only from a trusted peer', async (t) => {
  const h = await build(t, { deny: ['203.0.113.0/24'] }, {}, ['127.0.0.1'])
  const xff = { 'x-forwarded-for': '203.0.113.5' }
  t.equal(await status(h, '/open', '127.0.0.1', xff), 403, 'denied client behind the trusted proxy')
  t.equal(await status(h, '/open', '198.51.100.1', xff), 200, 'an untrusted peer is judged by its socket address')
  t.equal(await status(h, '/open', '203.0.113.9', { 'x-forwarded-for': '198.51.100.1' }), 403, 'x-forwarded-for from an untrusted peer cannot hide it')
  t.equal(await status(h, '/open', '127.0.0.1', { 'x-forwarded-for': 'garbage' }), 403, 'a list cannot be enforced on a malformed address: refused (fail closed)')
  t.equal(h.hits(), 1)
})

t.test('a malformed client address fails an allow list', async (t) => {
  const h = await build(t, { allow: ['0.0.0.0/0', '::/0'] }, {}, ['127.0.0.1'])
  t.equal(await status(h, '/open', '127.0.0.1', { 'x-forwarded-for': '198.51.100.1' }), 200)
  t.equal(await status(h, '/open', '127.0.0.1', { 'x-forwarded-for': 'garbage' }), 403)
  t.equal(h.hits(), 1)
})

t.test('allowedContentTypes: 415 for other bodies, media type compared without parameters', async (t) => {
  const h = await build(t, {}, { allowedContentTypes: ['application/json', 'application/x-www-form-urlencoded'] })
  const post = async (url: string, headers: Record<string, string>, payload: string): Promise<{ statusCode: number, json: () => unknown }> =>
    await h.app.inject({ method: 'POST', url, headers, payload })
  t.equal((await post('/filtered', { 'content-type': 'application/json' }, '{"a":1}')).statusCode, 200)
  t.equal((await post('/filtered', { 'content-type': 'Application/JSON; charset=utf-8' }, '{"a":1}')).statusCode, 200)
  const bad = await post('/filtered', { 'content-type': 'text/plain' }, 'hello')
  t.equal(bad.statusCode, 415)
  t.strictSame(bad.json(), { statusCode: 415, code: 'GW_REQUEST_UNSUPPORTED_MEDIA_TYPE', error: 'Unsupported Media Type', message: 'Unsupported media type' })
  t.equal((await post('/filtered', { 'content-type': 'application/jsonx' }, '{}')).statusCode, 415)
  const before = h.hits()
  t.equal(before, 2)
  const noType = await h.app.inject({ method: 'POST', url: '/filtered', payload: Buffer.from('x'), headers: { 'content-type': '' } })
  t.equal(noType.statusCode, 415, 'a body without a media type')
  t.equal(h.hits(), before)
  t.equal((await h.app.inject({ method: 'GET', url: '/filtered' })).statusCode, 200, 'no body, no check')
  t.equal((await post('/open', { 'content-type': 'text/plain' }, 'hello')).statusCode, 200, 'another route is untouched')
})

t.test('invalid options and route config: ready() rejects with GW_IP_FILTER_CONFIG_INVALID listing every problem', async (t) => {
  const err = await Fastify().register(ipFilterPlugin, { allow: ['10.0.0.0/33'], deny: ['nope', '::ffff:1.2.3.4/64'] }).ready().then(() => undefined, (e: Error & { code?: string }) => e)
  t.equal(err?.code, 'GW_IP_FILTER_CONFIG_INVALID')
  t.match(err?.message, /allow\[0\]: "10\.0\.0\.0\/33" has an invalid prefix length/)
  t.match(err?.message, /deny\[0\]: "nope" is not an IP address or CIDR/)
  t.match(err?.message, /deny\[1\]/)
  await t.rejects(async () => await Fastify().register(ipFilterPlugin, { allow: 'x' as unknown as string[] }).ready(), { code: 'GW_IP_FILTER_CONFIG_INVALID' })
  await t.rejects(async () => await Fastify().register(ipFilterPlugin, { block: [] } as IpFilterPluginOptions).ready(), { code: 'GW_IP_FILTER_CONFIG_INVALID' })

  const routeConfigs: Array<Record<string, unknown>> = [
    { ipFilter: { allow: ['300.1.1.1'] } },
    { ipFilter: { deny: ['2001:db8::/129'] } },
    { ipFilter: { block: ['1.2.3.4'] } },
    { allowedContentTypes: ['json'] },
    { allowedContentTypes: [] }
  ]
  for (const config of routeConfigs) {
    const app = Fastify()
    await app.register(ipFilterPlugin, {})
    await t.rejects(async () => {
      app.get('/x', { config }, async () => 'x')
      await app.ready()
    }, { code: 'GW_IP_FILTER_CONFIG_INVALID' }, JSON.stringify(config))
    await app.close()
  }
})
