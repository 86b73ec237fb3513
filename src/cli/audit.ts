/**
 * `portcullis audit`: sends a battery of bypass attempts through the real gateway on the
 * operator's configuration (the sandbox: every upstream replaced by one recording stand-in) and
 * reports every probe that reached an upstream it should not have.
 *
 * What counts as a bypass, judged on what the stand-in recorded (never on the gateway's answer):
 * - a probe without a valid credential (none, or a refused, misplaced or ambiguous one) reached
 *   a protected route's upstream;
 * - a probe without a valid credential reached ANY upstream with a path that, read as a lenient
 *   backend reads it (case folded, `;` parameters and trailing dots dropped), lies inside a
 *   protected route's upstream space (same origin, under its base path + rewritePrefix): a public
 *   route sharing a protected route's upstream path serves the protected resources to anyone
 *   (reported once per public route, by its `credentials` probe);
 * - any request reached an upstream with a path a backend reads differently than the gateway:
 *   `..`, `%2e`, `%2f`, `%5c`, `\`, NUL, a `;` within the route's upstream prefix, or that prefix in
 *   another case (a `;` parameter after the prefix still reads as the same route, and the request
 *   guard allows it on purpose); with an identity or forwarding header the client set
 *   (x-consumer-*, x-forwarded-* and `forwarded` when TRUST_PROXY is empty, x-real-ip,
 *   x-original-url, x-rewrite-url, x-http-method-override); with a body larger than BODY_LIMIT;
 *   as an upgrade on a route without `websocket`; or as a request hidden in another request's body;
 * - on a rate-limited route, after its limit is used up, a spelling of the same path was admitted.
 * A control probe per route (a valid credential on protected routes) must reach the route's
 * upstream, or the route cannot be judged ("control failed") and the audit fails.
 * Valid credentials: a configured API key (never printed), or a JWT signed with JWT_SECRET for
 * the configured issuer and audience and the route's scopes. With JWT_PUBLIC_KEY or JWKS_URL the
 * claim probes (expired, wrong issuer, ...) need the private key and are reported "not probed".
 * A probe answered 503 (a gateway under pressure) is sent again; 503 every time is "not judged".
 *
 * Exit codes (src/cli.ts): 0 no bypass, 1 a bypass, a failed control or an invalid configuration.
 */
import { generateKeyPair, randomBytes } from 'node:crypto'
import { promisify } from 'node:util'
import { connect } from 'node:net'
import { createSigner } from 'fast-jwt'
import { configuredApiKeys, type GatewayConfig } from '../config.js'
import type { EffectiveRoute } from './effective.js'
import type { Problem } from './load.js'
import { formatTable } from './routes.js'
import { startSandbox, type Received, type Sandbox } from './sandbox.js'

export const FAMILIES = ['control', 'credentials', 'tokens', 'placement', 'path', 'method', 'headers', 'body', 'smuggling', 'websocket', 'rate-limit'] as const
export type Family = typeof FAMILIES[number]

export interface ProbeResult {
  readonly id: string
  readonly route: string
  readonly family: Family
  readonly probe: string
  /** The request line as sent (credentials shown as [credential]). */
  readonly request: string
  /** The gateway's answer (0: none, the connection closed). */
  readonly status: number
  /** What reached a stand-in: route prefix, method, target (as the real upstream gets it). */
  readonly reached: ReadonlyArray<{ readonly route: string, readonly method: string, readonly target: string }>
  /** `not judged`: the gateway answered 503 (overloaded) to every attempt. */
  readonly verdict: 'pass' | 'bypass' | 'control failed' | 'not judged'
  /** Why it is a bypass (one line each). */
  readonly findings: readonly string[]
}

export interface AuditReport {
  readonly ok: boolean
  readonly problems: readonly Problem[]
  readonly routes: ReadonlyArray<{ readonly prefix: string, readonly file: string, readonly protected: boolean }>
  readonly probes: readonly ProbeResult[]
  /** Probes that could not run, and why. */
  readonly notProbed: ReadonlyArray<{ readonly route: string, readonly family: Family, readonly probe: string, readonly reason: string }>
  readonly bypasses: number
  readonly controlFailures: number
  readonly notJudged: number
}

type Cred = 'valid' | 'none' | 'invalid'

interface Probe {
  id: string
  route: number
  family: Family
  name: string
  cred: Cred
  /** Raw request bytes (latin1), the marker header already in. */
  bytes: Buffer
  requestLine: string
  /** Keep-alive probes wait this long for pipelined answers. */
  timeoutMs: number
  /** Stand-in records marked with this id are requests hidden inside another one. */
  hiddenId?: string
  /** Runs in the rate-limited sandbox. */
  limited?: boolean
  /** Expected to reach (control) or allowed to reach (valid credential). */
  control?: boolean
}

const MARKER = 'x-audit-probe'
const SPOOF = 'audit-spoof'
const SPOOF_IP = '203.0.113.66'
const CONCURRENCY = 8
const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ=='

/** A backend reads these path spellings differently from the gateway's route match. */
const AMBIGUOUS_PATH = /\.\.|%2e|%2f|%5c|\\|%00/i
/** Headers the gateway never sets: present upstream means the client's value passed through. */
const NEVER_FORWARDED = ['x-real-ip', 'x-original-url', 'x-rewrite-url', 'x-http-method-override', 'x-http-method', 'x-method-override']

function b64url (s: string | Buffer): string {
  return Buffer.from(s).toString('base64url')
}

interface Credentials {
  /** Headers that authenticate a request on the route, or undefined with the reason. */
  readonly headers: Array<[string, string]> | undefined
  readonly why: string
  readonly apiKey: string | undefined
  readonly token: string | undefined
}

class Minter {
  private readonly now = Math.floor(Date.now() / 1000)
  private constructor (private readonly config: GatewayConfig, private readonly rsa: string) {}

  /** The RSA key is made off the event loop (a blocked loop reads as overload to the gateway). */
  static async create (config: GatewayConfig): Promise<Minter> {
    const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 })
    return new Minter(config, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)
  }

  get canSign (): boolean { return this.config.auth.jwtSecret !== undefined }

  claims (scopes: readonly string[], over: Record<string, unknown> = {}): Record<string, unknown> {
    const a = this.config.auth
    return {
      sub: 'portcullis-audit',
      iat: this.now,
      exp: this.now + 120,
      ...(a.issuer !== undefined ? { iss: a.issuer } : {}),
      ...(a.audience !== undefined && a.audience.length > 0 ? { aud: a.audience[0] } : {}),
      ...(scopes.length > 0 ? { scope: scopes.join(' ') } : {}),
      ...over
    }
  }

  /** Signed with the configured secret. */
  good (claims: Record<string, unknown>): string {
    return createSigner({ key: this.config.auth.jwtSecret as string, algorithm: 'HS256', noTimestamp: true })(claims)
  }

  otherSecret (claims: Record<string, unknown>): string {
    return createSigner({ key: randomBytes(32).toString('hex'), algorithm: 'HS256', noTimestamp: true })(claims)
  }

  rs (claims: Record<string, unknown>): string {
    return createSigner({ key: this.rsa, algorithm: 'RS256', noTimestamp: true })(claims)
  }

  none (claims: Record<string, unknown>): string {
    return `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}.`
  }

  get time (): number { return this.now }
}

function credentialsFor (r: EffectiveRoute, config: GatewayConfig, minter: Minter): Credentials {
  if (r.auth === false) return { headers: [], why: '', apiKey: undefined, token: undefined }
  // A key that is valid now and holds the route's scopes, else any valid one.
  const keys = configuredApiKeys(config).filter((k) => k.expires === undefined || Date.parse(k.expires) > Date.now())
  const auth = r.auth
  const key = auth.strategies.includes('apiKey') ? (keys.find((k) => auth.scopes.every((s) => k.scopes?.includes(s) === true)) ?? keys[0])?.key : undefined
  const token = r.auth.strategies.includes('jwt') && minter.canSign ? minter.good(minter.claims(r.auth.scopes)) : undefined
  const k: [string, string] | undefined = key !== undefined ? ['x-api-key', key] : undefined
  const t: [string, string] | undefined = token !== undefined ? ['authorization', `Bearer ${token}`] : undefined
  let headers: Array<[string, string]> | undefined
  if (r.auth.relation === 'all') headers = r.auth.strategies.every((s) => (s === 'jwt' ? t : k) !== undefined) ? [k, t].filter((h): h is [string, string] => h !== undefined) : undefined
  else headers = r.auth.scopes.length > 0 ? (t !== undefined ? [t] : k !== undefined ? [k] : undefined) : (k !== undefined ? [k] : t !== undefined ? [t] : undefined)
  return { headers, why: headers === undefined ? 'no signing key and no API key for this route' : '', apiKey: key, token }
}

interface RequestSpec {
  method: string
  target: string
  headers?: Array<[string, string]>
  body?: string | Buffer
  version?: string
  keepAlive?: boolean
  /** Written after the headers as is (no Content-Length added). */
  raw?: string
}

function serialise (host: string, id: string, spec: RequestSpec): Buffer {
  const lines = [`${spec.method} ${spec.target} HTTP/${spec.version ?? '1.1'}`, `host: ${host}`, `${MARKER}: ${id}`]
  for (const [n, v] of spec.headers ?? []) lines.push(`${n}: ${v}`)
  if (spec.keepAlive !== true) lines.push('connection: close')
  if (spec.body !== undefined) lines.push(`content-length: ${Buffer.byteLength(spec.body)}`)
  const head = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1')
  const tail = spec.raw !== undefined ? Buffer.from(spec.raw, 'latin1') : spec.body !== undefined ? Buffer.from(spec.body) : Buffer.alloc(0)
  return Buffer.concat([head, tail])
}

/** Writes the bytes and reads until the gateway closes the connection or `timeoutMs` passes; returns the first status. */
async function exchange (port: number, bytes: Buffer, timeoutMs: number): Promise<number> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let head = ''
    const finish = (): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(Number(/^HTTP\/\d(?:\.\d)? (\d{3})/.exec(head)?.[1] ?? 0))
    }
    const timer = setTimeout(finish, timeoutMs)
    socket.on('data', (c: Buffer) => { if (head.length < 64) head += c.toString('latin1') })
    socket.on('close', finish)
    socket.on('error', () => {})
    socket.write(bytes)
  })
}

/** Waits (bounded) until the gateway reports ready: a gateway under pressure answers 503 to everything, which would decide nothing. */
async function ready (port: number, host: string): Promise<void> {
  for (let attempt = 0; attempt < 40; attempt++) {
    if (await exchange(port, Buffer.from(`GET /readyz HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`), 5000) === 200) return
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

async function pool<T> (items: readonly T[], n: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await run(items[next++] as T)
  }))
}

function hostFor (config: GatewayConfig): string {
  const h = config.publicHosts?.[0]
  if (h === undefined) return 'localhost'
  return h.startsWith('*.') ? `audit${h.slice(1)}` : h
}

/** Origin and upstream path prefix (base path + rewritePrefix) of each of a route's upstreams. */
function spaces (r: EffectiveRoute): Array<{ origin: string, prefix: string }> {
  return r.upstreams.map((u) => {
    const url = new URL(u)
    return { origin: url.origin, prefix: (url.pathname.replace(/\/+$/, '') + (r.rewritePrefix ?? '')).replace(/\/+$/, '') }
  })
}

/** The path as a lenient backend reads it: `;` parameters and trailing dots or spaces dropped, letters in one case. */
function lenientReading (path: string): string {
  return path.split('/').map((seg) => (seg.split(';')[0] as string).replace(/[. ]+$/, (m) => m === seg ? m : '')).join('/').toLowerCase()
}

function inside (path: string, prefix: string): boolean {
  return prefix === '' || path === prefix || path.startsWith(prefix + '/')
}

/** The battery for one route (run in the sandbox without route limits). */
function battery (i: number, routes: readonly EffectiveRoute[], config: GatewayConfig, minter: Minter, creds: Credentials, next: () => string, skip: (family: Family, probe: string, reason: string) => void): Probe[] {
  const r = routes[i] as EffectiveRoute
  const host = hostFor(config)
  const out: Probe[] = []
  const P = r.prefix === '/' ? '' : r.prefix
  const protectedRoute = r.auth !== false
  const valid = creds.headers
  const add = (family: Family, name: string, cred: Cred, spec: RequestSpec, extra: Partial<Probe> = {}): void => {
    const id = next()
    out.push({ id, route: i, family, name, cred, bytes: serialise(host, id, spec), requestLine: `${spec.method} ${spec.target}`, timeoutMs: spec.keepAlive === true ? 1500 : 5000, ...extra })
  }
  const method = (m: string): string => r.methods.includes(m) ? m : (r.methods[0] ?? 'GET')
  const get = method('GET')

  // control
  if (valid !== undefined) add('control', protectedRoute ? 'valid credential' : 'public route', 'valid', { method: get, target: `${P}/audit`, headers: valid }, { control: true })
  else skip('control', 'valid credential', `not probed (${creds.why}): the route cannot be judged with credentials`)

  // credentials and tokens; on a public route, whether it reaches a protected route's upstream space
  if (r.auth === false) add('credentials', 'public route (no credential)', 'none', { method: get, target: `${P}/audit` })
  if (r.auth !== false) {
    add('credentials', 'no credential', 'none', { method: get, target: `${P}/audit` })
    add('credentials', 'HEAD without credential', 'none', { method: 'HEAD', target: `${P}/audit` })
    add('credentials', 'OPTIONS without credential', 'none', { method: 'OPTIONS', target: `${P}/audit` })
    add('credentials', 'bad API key', 'invalid', { method: get, target: `${P}/audit`, headers: [['x-api-key', 'audit-not-a-key-0123456789abcdef']] })
    if (r.auth.strategies.includes('jwt')) {
      const scopes = r.auth.scopes
      const c = (over: Record<string, unknown> = {}): Record<string, unknown> => minter.claims(scopes, over)
      const t = minter.time
      const bearer = (name: string, token: string): void => add('tokens', name, 'invalid', { method: get, target: `${P}/audit`, headers: [['authorization', `Bearer ${token}`]] })
      bearer('alg none', minter.none(c()))
      bearer('HS256 with another secret', minter.otherSecret(c()))
      bearer('RS256 with an unknown key', minter.rs(c()))
      if (!minter.canSign) {
        for (const n of ['expired', 'not yet valid', 'wrong issuer', 'wrong audience', 'missing scope']) skip('tokens', n, 'not probed (no signing key)')
      } else {
        const skew = config.auth.clockSkewS
        bearer('expired', minter.good(c({ iat: t - 600 - skew, exp: t - 300 - skew })))
        bearer('not yet valid', minter.good(c({ nbf: t + skew + 60, exp: t + skew + 120 })))
        if (config.auth.issuer !== undefined) bearer('wrong issuer', minter.good(c({ iss: 'https://audit-wrong-issuer.example' })))
        else skip('tokens', 'wrong issuer', 'not probed (JWT_ISSUER not set: any issuer is valid)')
        if (config.auth.audience !== undefined) bearer('wrong audience', minter.good(c({ aud: 'audit-wrong-audience' })))
        else skip('tokens', 'wrong audience', 'not probed (JWT_AUDIENCE not set: any audience is valid)')
        if (scopes.length > 0) bearer('missing scope', minter.good(minter.claims([], { scope: 'audit:none' })))
        else skip('tokens', 'missing scope', 'not probed (the route requires no scope)')
      }
    }

    // placement: a valid credential where the gateway must not read it
    const key = creds.apiKey
    if (key !== undefined) {
      const k = encodeURIComponent(key)
      for (const q of ['api_key', 'apikey', 'x-api-key']) add('placement', `API key in ?${q}=`, 'invalid', { method: get, target: `${P}/audit?${q}=${k}` })
      add('placement', 'API key in a cookie', 'invalid', { method: get, target: `${P}/audit`, headers: [['cookie', `api_key=${key}; x-api-key=${key}; apikey=${key}`]] })
      add('placement', 'x-api-key twice, one bad', 'invalid', { method: get, target: `${P}/audit`, headers: [['x-api-key', 'audit-not-a-key-0123456789abcdef'], ['x-api-key', key]] })
    } else {
      skip('placement', 'API key placements', 'not probed (no API key configured for this route)')
    }
    const token = creds.token
    if (token !== undefined) {
      add('placement', 'bearer in ?access_token=', 'invalid', { method: get, target: `${P}/audit?access_token=${token}` })
      add('placement', 'second authorization header', 'invalid', { method: get, target: `${P}/audit`, headers: [['authorization', 'Bearer audit.not.atoken'], ['authorization', `Bearer ${token}`]] })
    } else if (r.auth.strategies.includes('jwt')) {
      skip('placement', 'token placements', 'not probed (no signing key)')
    }
  }

  // path spellings of the prefix, without and with credentials
  const first = r.prefix.split('/')[1] ?? ''
  const other = routes.find((x, j) => j !== i && x.prefix !== '/')?.prefix ?? '/audit-other'
  const spellings: Array<[string, string]> = []
  if (first !== '') {
    const enc = '%' + first.charCodeAt(0).toString(16) + first.slice(1)
    spellings.push(['percent-encoded letter', '/' + enc + r.prefix.slice(first.length + 1) + '/x'])
    spellings.push(['case', r.prefix.toUpperCase() === r.prefix ? r.prefix.toLowerCase() + '/x' : r.prefix.toUpperCase() + '/x'])
    spellings.push(['; parameter on the prefix', `${r.prefix};x/x`])
    spellings.push(['trailing dot', `${r.prefix}./x`])
  }
  spellings.push(
    ['encoded slash', `${P}%2fx`],
    ['encoded slash inside', `${P}/x%2f..%2fy`],
    ['dot segments', `${other}/../${P.slice(1)}/x`],
    ['encoded dot segments', `${other}/%2e%2e/${P.slice(1)}/x`],
    ['dot segment escaping the prefix', `${P}/../x`],
    ['duplicate slashes', `/${P}/x`],
    ['overlong UTF-8', `${other}/%c0%ae%c0%ae%c0%af${P.slice(1)}/x`],
    ['backslash', `${other}\\..\\${P.slice(1)}\\x`],
    ['; parameter', `${P}/x;y/z`],
    ['Tomcat ..;', `${P}/x/..;/y`],
    ['encoded NUL', `${P}/x%00.json`]
  )
  for (const [name, target] of spellings) {
    add('path', `${name} (no credential)`, 'none', { method: get, target })
    if (protectedRoute && valid !== undefined) add('path', `${name} (credential)`, 'valid', { method: get, target, headers: valid })
  }

  // method overrides
  const c = valid ?? []
  add('method', 'X-HTTP-Method-Override: DELETE (no credential)', 'none', { method: get, target: `${P}/audit`, headers: [['x-http-method-override', 'DELETE']] })
  add('method', '_method=DELETE (no credential)', 'none', { method: method('POST'), target: `${P}/audit?_method=DELETE`, body: '' })
  if (valid !== undefined) add('method', 'X-HTTP-Method-Override: DELETE (credential)', protectedRoute ? 'valid' : 'none', { method: get, target: `${P}/audit`, headers: [...c, ['x-http-method-override', 'DELETE'], ['x-method-override', 'DELETE'], ['x-http-method', 'DELETE']] })

  // identity and forwarding headers
  if (valid !== undefined) {
    const cred: Cred = protectedRoute ? 'valid' : 'none'
    const spoofs: Array<[string, string]> = [
      ['x-consumer-id', SPOOF], ['x-consumer-scopes', `${SPOOF} admin`], ['x-real-ip', SPOOF_IP], ['x-original-url', `/${SPOOF}`], ['x-rewrite-url', `/${SPOOF}`]
    ]
    const forwarding: Array<[string, string]> = [
      ['x-forwarded-for', SPOOF_IP], ['x-forwarded-host', `${SPOOF}.example`], ['x-forwarded-proto', SPOOF], ['forwarded', `for=${SPOOF_IP};host=${SPOOF}.example`]
    ]
    for (const h of spoofs) add('headers', h[0], cred, { method: get, target: `${P}/audit`, headers: [...c, h] })
    if (config.trustProxy.length === 0) for (const h of forwarding) add('headers', h[0], cred, { method: get, target: `${P}/audit`, headers: [...c, h] })
    else for (const h of forwarding) skip('headers', h[0], 'not probed (TRUST_PROXY is set: forwarding headers from its peers are believed)')
  } else {
    skip('headers', 'identity and forwarding headers', `not probed (${creds.why})`)
  }

  // oversize bodies
  const bodyMethod = ['POST', 'PUT', 'PATCH'].find((m) => r.methods.includes(m))
  if (bodyMethod !== undefined && valid !== undefined) {
    const cred: Cred = protectedRoute ? 'valid' : 'none'
    const size = config.bodyLimit + 1024
    add('body', 'declared beyond BODY_LIMIT', cred, { method: bodyMethod, target: `${P}/audit`, headers: [...c, ['content-type', 'application/octet-stream']], body: Buffer.alloc(size, 0x61) })
    const chunk = Buffer.alloc(65536, 0x61)
    const chunks: Buffer[] = []
    for (let n = 0; n < size; n += chunk.length) chunks.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n'))
    chunks.push(Buffer.from('0\r\n\r\n'))
    add('body', 'chunked beyond BODY_LIMIT', cred, { method: bodyMethod, target: `${P}/audit`, headers: [...c, ['content-type', 'application/octet-stream'], ['transfer-encoding', 'chunked']], raw: Buffer.concat(chunks).toString('latin1') })
  } else {
    skip('body', 'beyond BODY_LIMIT', bodyMethod === undefined ? 'not probed (the route takes no bodies)' : `not probed (${creds.why})`)
  }

  // smuggling: a request without credentials hidden in another's body
  const victim = routes.findIndex((x) => x.auth !== false)
  const hiddenTarget = `${(routes[victim === -1 ? i : victim] as EffectiveRoute).prefix.replace(/\/$/, '')}/audit-hidden`
  const outer = method('POST')
  const shapes: Array<[string, (hidden: string) => RequestSpec]> = [
    ['Content-Length + Transfer-Encoding', (h) => ({ method: outer, target: `${P}/audit`, keepAlive: true, headers: [...c, ['content-length', String(5 + h.length)], ['transfer-encoding', 'chunked']], raw: `0\r\n\r\n${h}` })],
    ['Transfer-Encoding obs-fold', (h) => ({ method: outer, target: `${P}/audit`, keepAlive: true, headers: [...c, ['content-length', String(5 + h.length)], ['transfer-encoding', '\r\n chunked']], raw: `0\r\n\r\n${h}` })],
    ['Transfer-Encoding: chunked, identity', (h) => ({ method: outer, target: `${P}/audit`, keepAlive: true, headers: [...c, ['transfer-encoding', 'chunked, identity']], raw: `0\r\n\r\n${h}` })],
    ['Transfer-Encoding: xchunked', (h) => ({ method: outer, target: `${P}/audit`, keepAlive: true, headers: [...c, ['content-length', '5'], ['transfer-encoding', 'xchunked']], raw: `0\r\n\r\n${h}` })],
    ['two Content-Length', (h) => ({ method: outer, target: `${P}/audit`, keepAlive: true, headers: [...c, ['content-length', '0'], ['content-length', String(h.length)]], raw: h })],
    ['Transfer-Encoding in HTTP/1.0', (h) => ({ method: outer, target: `${P}/audit`, version: '1.0', keepAlive: true, headers: [...c, ['connection', 'keep-alive'], ['transfer-encoding', 'chunked'], ['content-length', String(5 + h.length)]], raw: `0\r\n\r\n${h}` })],
    ['request in a GET body', (h) => ({ method: get, target: `${P}/audit`, keepAlive: true, headers: [...c, ['content-length', String(h.length)]], raw: h })]
  ]
  for (const [name, shape] of shapes) {
    const id = next()
    const hiddenId = `${id}-hidden`
    const hidden = `GET ${hiddenTarget} HTTP/1.1\r\nhost: ${host}\r\n${MARKER}: ${hiddenId}\r\nconnection: close\r\n\r\n`
    const spec = shape(hidden)
    out.push({ id, route: i, family: 'smuggling', name, cred: protectedRoute && valid !== undefined ? 'valid' : 'none', bytes: serialise(host, id, spec), requestLine: `${spec.method} ${spec.target} + GET ${hiddenTarget}`, timeoutMs: 1500, hiddenId })
  }

  // WebSocket upgrades
  const ws: Array<[string, string]> = [['upgrade', 'websocket'], ['connection', 'Upgrade'], ['sec-websocket-key', WS_KEY], ['sec-websocket-version', '13']]
  add('websocket', 'upgrade without credential', 'none', { method: 'GET', target: `${P}/audit`, headers: ws, keepAlive: true })
  if (!r.websocket && valid !== undefined) add('websocket', 'upgrade on a route without websocket', protectedRoute ? 'valid' : 'none', { method: 'GET', target: `${P}/audit`, headers: [...c, ...ws], keepAlive: true })
  return out
}

/** Rate-limit evasion by path spelling (run in the sandbox with the operator's limits). */
function evasion (i: number, r: EffectiveRoute, config: GatewayConfig, creds: Credentials, next: () => string, skip: (family: Family, probe: string, reason: string) => void): { fill: Probe[], variants: Probe[] } {
  if (r.rateLimit === false) { skip('rate-limit', 'path spellings', 'not probed (no rate limit on the route)'); return { fill: [], variants: [] } }
  if (r.rateLimit.windowMs < 60_000) { skip('rate-limit', 'path spellings', `not probed (window ${r.rateLimit.window} too short to judge)`); return { fill: [], variants: [] } }
  if (r.rateLimit.max > 1000) { skip('rate-limit', 'path spellings', `not probed (limit ${r.rateLimit.max} too high to use up)`); return { fill: [], variants: [] } }
  if (creds.headers === undefined) { skip('rate-limit', 'path spellings', `not probed (${creds.why})`); return { fill: [], variants: [] } }
  const host = hostFor(config)
  const get = r.methods.includes('GET') ? 'GET' : (r.methods[0] ?? 'GET')
  const P = r.prefix === '/' ? '' : r.prefix
  const cred: Cred = r.auth === false ? 'none' : 'valid'
  const probe = (name: string, target: string): Probe => {
    const id = next()
    return { id, route: i, family: 'rate-limit', name, cred, bytes: serialise(host, id, { method: get, target, headers: creds.headers }), requestLine: `${get} ${target}`, timeoutMs: 5000, limited: true, control: true }
  }
  const fill = Array.from({ length: r.rateLimit.max }, () => probe('use up the limit', `${P}/x`))
  const upper = P.toUpperCase() === P ? P.toLowerCase() : P.toUpperCase()
  const variants = ([['same path', `${P}/x`], ['trailing slash', `${P}/x/`], ['duplicate slash', `${P}//x`], ['percent-encoded letter', `${P}/%78`], ['case', `${upper}/x`], ['case of the rest', `${P}/X`]] as const).map(([n, t]) => ({ ...probe(n, t), control: false }))
  return { fill, variants }
}

export async function audit (env: NodeJS.ProcessEnv, routesDir?: string): Promise<AuditReport> {
  const opts = routesDir !== undefined ? { routesDir } : {}
  const open = await startSandbox(env, { ...opts, noRouteLimits: true })
  const empty = { ok: false, routes: [], probes: [], notProbed: [], bypasses: 0, controlFailures: 0, notJudged: 0 }
  if (open.sandbox === undefined) return { ...empty, problems: open.problems }
  const limited = await startSandbox(env, opts)
  if (limited.sandbox === undefined) {
    await open.sandbox.close()
    return { ...empty, problems: limited.problems }
  }
  try {
    return await run(open.sandbox, limited.sandbox)
  } finally {
    await open.sandbox.close()
    await limited.sandbox.close()
  }
}

async function run (sandbox: Sandbox, limitedSandbox: Sandbox): Promise<AuditReport> {
  const { routes, config } = sandbox
  const minter = await Minter.create(config)
  let n = 0
  const next = (): string => String(++n)
  const notProbed: Array<AuditReport['notProbed'][number]> = []
  const probes: Probe[] = []
  const fills: Probe[] = []
  const variants: Probe[] = []
  const secrets: string[] = []
  routes.forEach((r, i) => {
    const creds = credentialsFor(r, config, minter)
    for (const s of [creds.apiKey, creds.token]) if (s !== undefined) secrets.push(s, encodeURIComponent(s))
    const skip = (family: Family, probe: string, reason: string): void => { notProbed.push({ route: r.prefix, family, probe, reason }) }
    probes.push(...battery(i, routes, config, minter, creds, next, skip))
    const e = evasion(i, r, config, creds, next, skip)
    fills.push(...e.fill)
    variants.push(...e.variants)
  })
  for (const k of configuredApiKeys(config)) secrets.push(k.key, encodeURIComponent(k.key))
  const redact = (s: string): string => secrets.reduce((acc, sec) => sec === '' ? acc : acc.split(sec).join('[credential]'), s)

  const status = new Map<string, number>()
  const received = (): number => sandbox.received.length + limitedSandbox.received.length
  // A 503 (pressure on a loaded machine) decides nothing about the probe: it is sent again.
  const send = (port: number) => async (p: Probe): Promise<void> => {
    for (let attempt = 0; attempt < 4; attempt++) {
      const before = received()
      const code = await exchange(port, p.bytes, p.timeoutMs)
      status.set(p.id, code)
      if (code !== 503 || received() !== before) return
      await new Promise((resolve) => setTimeout(resolve, 250 * (attempt + 1)))
    }
  }
  await ready(sandbox.port, hostFor(config))
  await ready(limitedSandbox.port, hostFor(config))
  // Controls first, alone: they show the sandbox reaches each upstream before the battery runs.
  await pool(probes.filter((p) => p.family === 'control'), CONCURRENCY, send(sandbox.port))
  // Keep-alive probes mostly wait for a second answer that never comes: they run in a wider pool.
  const sent = probes.filter((p) => p.family !== 'control')
  await Promise.all([
    pool(sent.filter((p) => p.timeoutMs >= 5000), CONCURRENCY, send(sandbox.port)),
    pool(sent.filter((p) => p.timeoutMs < 5000), CONCURRENCY * 4, send(sandbox.port))
  ])
  await pool(fills, CONCURRENCY, send(limitedSandbox.port))
  await pool(variants, CONCURRENCY, send(limitedSandbox.port))

  // Attribute what the stand-ins recorded to the probes.
  const byProbe = new Map<string, Received[]>()
  const orphans: Received[] = []
  for (const rec of [...sandbox.received, ...limitedSandbox.received]) {
    const id = rec.headers[MARKER]
    if (typeof id === 'string') byProbe.set(id, [...(byProbe.get(id) ?? []), rec])
    else orphans.push(rec)
  }

  const protectedSpaces = routes.flatMap((r) => r.auth === false ? [] : spaces(r).map((s) => ({ ...s, route: r.prefix })))
  /** The protected space a public route's whole upstream space lies in (reported once, by its credentials probe). */
  const sharedSpace = (r: EffectiveRoute): typeof protectedSpaces[number] | undefined => r.auth !== false
    ? undefined
    : spaces(r).map((u) => protectedSpaces.find((s) => s.route !== r.prefix && s.origin === u.origin && inside(u.prefix.toLowerCase(), s.prefix.toLowerCase()))).find((s) => s !== undefined)
  const judge = (rec: Received, cred: Cred, family: Family, hidden: boolean): string[] => {
    const f: string[] = []
    const r = routes[rec.route] as EffectiveRoute
    const path = rec.target.split('?')[0] as string
    const where = `${rec.method} ${redact(rec.target)} reached ${r.prefix}'s upstream`
    if (hidden) f.push(`${where}: a request hidden in another request's body`)
    if (cred !== 'valid' && r.auth !== false) f.push(`${where} without a valid credential`)
    if (cred !== 'valid' && (family === 'credentials' || sharedSpace(r) === undefined)) {
      for (const u of spaces(r)) {
        const hit = protectedSpaces.find((s) => s.route !== r.prefix && s.origin === u.origin && inside(lenientReading(path), s.prefix.toLowerCase()))
        if (hit !== undefined) { f.push(`${where} (${u.origin}${redact(path)}) without a valid credential: inside protected route ${hit.route}'s upstream space ${hit.origin}${hit.prefix}`); break }
      }
    }
    // `;` parameters after the route's upstream prefix are allowed by the request guard: a backend
    // that drops them still reads a path of the same route, so only `;` within the prefix counts.
    const own = spaces(r).map((s) => s.prefix)
    const ownPrefix = own.find((p) => inside(path, p))
    if (AMBIGUOUS_PATH.test(path) || path.includes('\0') || (path.includes(';') && (ownPrefix === undefined || path.slice(0, ownPrefix.length + 1).includes(';')))) f.push(`${where} with a path backends read differently (${redact(path)})`)
    if (own.some((p) => p !== '' && path.toLowerCase().startsWith(p.toLowerCase()) && !path.startsWith(p))) f.push(`${where} with the route's upstream prefix in another case`)
    for (const [name, value] of Object.entries(rec.headers)) {
      const v = Array.isArray(value) ? value.join(', ') : String(value)
      if (name !== MARKER && (v.includes(SPOOF) || v.includes(SPOOF_IP))) f.push(`${where} with the client's ${name} value`)
      else if (NEVER_FORWARDED.includes(name)) f.push(`${where} with the client's ${name} header`)
      else if (name.startsWith('x-consumer-') && cred !== 'valid') f.push(`${where} with ${name} though no credential was verified`)
    }
    if (rec.bodyBytes > config.bodyLimit) f.push(`${where} with a ${rec.bodyBytes}-byte body (BODY_LIMIT ${config.bodyLimit})`)
    if (rec.method.endsWith('(upgrade)') && !r.websocket) f.push(`${where} as an upgrade, on a route without websocket`)
    return f
  }

  const results: ProbeResult[] = []
  for (const p of [...probes, ...variants]) {
    const route = routes[p.route] as EffectiveRoute
    const recs = byProbe.get(p.id) ?? []
    const hidden = p.hiddenId !== undefined ? byProbe.get(p.hiddenId) ?? [] : []
    const findings = [...recs.flatMap((rec) => judge(rec, p.cred, p.family, false)), ...hidden.flatMap((rec) => judge(rec, 'none', p.family, true))]
    if (p.family === 'rate-limit' && recs.length > 0) findings.push(`${p.requestLine} was admitted after the route's limit (${route.rateLimit === false ? '' : `${route.rateLimit.max}/${route.rateLimit.window}`}) was used up`)
    const controlFailed = p.control === true && p.family === 'control' && !recs.some((rec) => rec.route === p.route)
    const notJudged = findings.length === 0 && status.get(p.id) === 503
    results.push({
      id: p.id,
      route: route.prefix,
      family: p.family,
      probe: p.name,
      request: redact(p.requestLine),
      status: status.get(p.id) ?? 0,
      reached: [...recs, ...hidden].map((rec) => ({ route: (routes[rec.route] as EffectiveRoute).prefix, method: rec.method, target: redact(rec.target) })),
      verdict: controlFailed ? 'control failed' : findings.length > 0 ? 'bypass' : notJudged ? 'not judged' : 'pass',
      findings: controlFailed ? [`control failed: the audit cannot judge this route (a valid request did not reach its upstream; the gateway answered ${status.get(p.id) ?? 0})`] : notJudged ? ['not judged: the gateway answered 503 to every attempt'] : findings
    })
  }
  for (const rec of orphans) {
    const route = routes[rec.route] as EffectiveRoute
    results.push({ id: 'unattributed', route: route.prefix, family: 'smuggling', probe: 'request without the probe marker', request: `${rec.method} ${redact(rec.target)}`, status: 0, reached: [{ route: route.prefix, method: rec.method, target: redact(rec.target) }], verdict: 'bypass', findings: [`${rec.method} ${redact(rec.target)} reached ${route.prefix}'s upstream without a probe's marker (a request the gateway built from another's bytes)`] })
  }
  const bypasses = results.filter((r) => r.verdict === 'bypass').length
  const controlFailures = results.filter((r) => r.verdict === 'control failed').length
  const notJudged = results.filter((r) => r.verdict === 'not judged').length
  return {
    ok: bypasses === 0 && controlFailures === 0 && notJudged === 0,
    problems: [],
    routes: routes.map((r) => ({ prefix: r.prefix, file: r.file, protected: r.auth !== false })),
    probes: results,
    notProbed,
    bypasses,
    controlFailures,
    notJudged
  }
}

export function formatAudit (r: AuditReport): string {
  const lines: string[] = []
  for (const p of r.problems) lines.push(`error    ${p.source === '' ? '' : `${p.source}: `}${p.message}`)
  if (r.problems.length > 0) return lines.join('\n') + '\n'
  const rows = r.routes.map((route) => {
    const row: Record<string, string> = { route: `${route.prefix}${route.protected ? '' : ' (public)'}` }
    for (const f of FAMILIES) {
      const mine = r.probes.filter((p) => p.route === route.prefix && p.family === f)
      const bad = mine.filter((p) => p.verdict !== 'pass').length
      row[f] = mine.length === 0 ? '-' : `${mine.length - bad}/${bad}`
    }
    return row
  })
  lines.push('probes passed/bypassed per route and family')
  lines.push(formatTable(rows).trimEnd())
  const bad = r.probes.filter((p) => p.verdict !== 'pass')
  if (bad.length > 0) {
    lines.push('', r.controlFailures + r.notJudged > 0 ? 'bypasses, failed controls and probes not judged' : 'bypasses')
    for (const p of bad) {
      lines.push(`  ${p.route} ${p.family}: ${p.probe}  [${p.request}] -> ${p.status === 0 ? 'no answer' : p.status}`)
      for (const f of p.findings) lines.push(`      ${f}`)
    }
  }
  if (r.notProbed.length > 0) {
    lines.push('', 'not probed')
    for (const s of r.notProbed) lines.push(`  ${s.route} ${s.family}: ${s.probe}: ${s.reason}`)
  }
  const uncontrolled = r.routes.filter((route) => !r.probes.some((p) => p.route === route.prefix && p.family === 'control')).length
  lines.push('', `${r.ok ? 'ok' : 'FAILED'}: ${r.probes.length} probes, ${r.bypasses} bypass${r.bypasses === 1 ? '' : 'es'}${r.controlFailures > 0 ? `, ${r.controlFailures} failed control${r.controlFailures === 1 ? '' : 's'}` : ''}${r.notJudged > 0 ? `, ${r.notJudged} not judged` : ''}${uncontrolled > 0 ? `, ${uncontrolled} route${uncontrolled === 1 ? '' : 's'} without a control (no credential to make)` : ''}`)
  return lines.join('\n') + '\n'
}
