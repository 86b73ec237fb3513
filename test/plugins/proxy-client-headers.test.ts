/**
 * The request header classification (plugins/proxy/client-headers.ts) and the redirect mapping
 * (plugins/proxy/headers.ts) as pure functions: the name families, the word rule and its
 * exemptions, spellings, operator names, the memo bound, and default ports.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import {
  AUTHORIZATION, DROP, KEEP, MAX_FORWARDS, EXACT_NAMES, IDENTITY_WORDS, PREFIXES, RequestHeaderFilter, defaultRequestHeaderFilter,
  stripNameProblem, trustedPeerMatcher
} from '../../plugins/proxy/client-headers.js'
import { redirectRewriter } from '../../plugins/proxy/headers.js'

t.test('every listed name and family is dropped, in any case and with underscores', async (t) => {
  const f = new RequestHeaderFilter()
  for (const name of EXACT_NAMES) {
    t.equal(f.classify(name), DROP, name)
    t.equal(f.classify(name.replaceAll('-', '_')), DROP, `${name} with underscores`)
    t.equal(f.classify(name.toUpperCase()), DROP, `${name} upper case`)
  }
  for (const prefix of PREFIXES) t.equal(f.classify(`${prefix}anything`), DROP, `${prefix}*`)
})

t.test('docs/security/headers.md lists every name, prefix and word', async (t) => {
  const doc = readFileSync(new URL('../../docs/security/headers.md', import.meta.url), 'utf8')
  for (const name of EXACT_NAMES) t.ok(doc.includes(`\`${name}\``), name)
  for (const prefix of PREFIXES) t.ok(doc.includes(`\`${prefix}*\``), `${prefix}*`)
  for (const word of IDENTITY_WORDS) t.ok(doc.includes(`\`${word}\``), word)
})

t.test('the word rule catches names no list spells out; ordinary headers pass', async (t) => {
  const f = defaultRequestHeaderFilter
  for (const name of ['x-proxy-user', 'x-end-user-email', 'x-verified-groups', 'x-device-principal', 'x-caller-identity', 'x-true-ip',
    'x-cdn-client-ip', 'x-peer-addr', 'x-tls-client-cert', 'x-upstream-cert-dn', 'x-login', 'x-member-roles', 'wl-proxy-client-ip',
    'x-acme-uid', 'x-custom-userid', 'x_custom_username']) {
    t.equal(f.classify(name), DROP, name)
  }
  for (const name of ['accept', 'accept-language', 'user-agent', 'x-user-agent', 'x-amz-user-agent', 'x-goog-user-project', 'x-amz-date',
    'content-type', 'cookie', 'if-none-match', 'origin', 'referer', 'sec-fetch-site', 'sec-ch-ua-platform', 'traceparent', 'x-csrf-token',
    'x-requested-with', 'idempotency-key', 'x-correlation-id', 'dnt', 'x_custom_thing', 'cache-control', 'range', 'baggage']) {
    t.equal(f.classify(name), KEEP, name)
  }
  t.equal(f.classify('authorization'), AUTHORIZATION)
  t.equal(f.classify('max-forwards'), MAX_FORWARDS)
  t.equal(f.classify('max_forwards'), DROP, 'another spelling of a special header is never forwarded')
})

t.test('operator names: exact names and prefixes, normalised; invalid ones are reported', async (t) => {
  const f = new RequestHeaderFilter(['X-Tenant-Id', 'X_Org_*'])
  t.equal(f.classify('x-tenant-id'), DROP)
  t.equal(f.classify('x_tenant_id'), DROP)
  t.equal(f.classify('x-org-name'), DROP)
  t.equal(f.classify('x-tenant-idx'), KEEP, 'an exact name is not a prefix')
  t.equal(defaultRequestHeaderFilter.classify('x-tenant-id'), KEEP, 'other gateways are not affected')
  for (const ok of ['X-Tenant-Id', 'x_acme_*', 'X-Acme-*']) t.equal(stripNameProblem(ok), undefined, ok)
  for (const bad of ['', '*', 'a b', 'x:y', 'x-*-y', 'Host', 'content-length', 'TRANSFER_ENCODING', 'con*', 'h*']) t.type(stripNameProblem(bad), 'string', bad)
})

t.test('the memo is bounded: unseen names past the bound are classified, not stored', async (t) => {
  const f = new RequestHeaderFilter()
  let kept = 0
  for (let i = 0; i < 10_000; i++) if (f.classify(`x-random-${i}`) === KEEP) kept++
  t.equal(kept, 10_000)
  const memo = (f as unknown as { memo: Map<string, number> }).memo
  t.equal(memo.size, 4096)
  t.equal(f.classify('x-real-ip'), DROP, 'still right once full')
  t.equal(f.classify(`x-${'a'.repeat(500)}-user`), DROP, 'long names are classified too')
  t.equal(memo.size, 4096)
})

t.test('trusted peers: addresses and CIDRs, IPv4-mapped peers included', async (t) => {
  t.equal(trustedPeerMatcher([]), undefined, 'none configured: no check at all')
  const trusted = trustedPeerMatcher(['10.0.0.0/8', '127.0.0.1', '2001:db8::/32']) as (a: string) => boolean
  t.ok(trusted('10.1.2.3'))
  t.ok(trusted('::ffff:127.0.0.1'))
  t.ok(trusted('2001:db8::1'))
  t.notOk(trusted('127.0.0.2'))
  t.notOk(trusted('192.0.2.1'))
  t.notOk(trusted('not-an-ip'))
  t.notOk(trusted('2001:db9::1'))
  t.ok(trusted('2001:db8::1'), 'a remembered IPv6 answer')
  t.ok((trustedPeerMatcher(['0.0.0.0/0']) as (a: string) => boolean)('192.0.2.1'), '/0 holds every IPv4 address')
  t.notOk((trustedPeerMatcher(['192.0.2.0/24']) as (a: string) => boolean)('192.0.3.1'))
})

t.test('redirect mapping: default ports, loopback spellings, every target, boundaries', async (t) => {
  const rewrite = redirectRewriter({ targets: [new URL('http://10.0.0.5/api'), new URL('https://backend.internal/api')], upstreamPrefix: '/api', publicPrefix: '/pub' })
  const map = (location: string): string | string[] | undefined => {
    const h: Record<string, string | string[] | undefined> = { location }
    rewrite(h)
    return h.location
  }
  t.equal(map('http://10.0.0.5/api/x'), '/pub/x')
  t.equal(map('http://10.0.0.5:80/api/x'), '/pub/x', 'explicit default port')
  t.equal(map('https://10.0.0.5:80/api/x'), '/pub/x', 'same host and port, other scheme')
  t.equal(map('https://backend.internal/api/y?z=1'), '/pub/y?z=1')
  t.equal(map('https://backend.internal:443/api'), '/pub')
  t.equal(map('http://backend.internal:8080/api/x'), 'http://backend.internal:8080/api/x', 'another port is another origin')
  t.equal(map('http://10.0.0.6/api/x'), 'http://10.0.0.6/api/x')
  t.equal(map('http://10.0.0.5/apix'), 'http://10.0.0.5/apix', 'segment boundary')
  t.equal(map('/api#frag'), '/pub#frag')
  t.equal(map('mailto:a@b.c'), 'mailto:a@b.c')
  t.equal(map('http://[bad'), 'http://[bad', 'unparsable values are left alone')

  const loop = redirectRewriter({ targets: [new URL('http://localhost:9000')], upstreamPrefix: '', publicPrefix: '' })
  for (const spelling of ['http://localhost:9000/a', 'http://127.0.0.1:9000/a', 'http://[::1]:9000/a', 'http://0.0.0.0:9000/a', '/a']) {
    const h: Record<string, string | string[] | undefined> = { location: spelling, refresh: `0;URL='${spelling}'` }
    loop(h)
    t.equal(h.location, '/a', spelling)
    t.equal(h.refresh, "0;URL='/a'", `Refresh ${spelling}`)
  }
  const h: Record<string, string | string[] | undefined> = { location: 'http://localhost:9001/a', refresh: '5' }
  loop(h)
  t.equal(h.location, 'http://localhost:9001/a', 'another local port is another service')
  t.equal(h.refresh, '5', 'a Refresh without a URL is untouched')
})
