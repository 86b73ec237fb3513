/**
 * `portcullis explain`: how the gateway reads one request. The request is sent through the real
 * chain (the sandbox: the operator's configuration, a recording stand-in for every upstream), so
 * the verdict is the gateway's own, not a re-implementation of it.
 */
import { AMBIGUOUS, readPath } from '../../plugins/request-guard/canonical.js'
import { GATEWAY_CHAIN } from '../chain.js'
import type { GatewayConfig } from '../config.js'
import type { EffectiveRoute } from './effective.js'
import type { Problem } from './load.js'
import { describeAuth, describeInspect, describeRateLimit } from './routes.js'
import { sendRaw, startSandbox, type Received } from './sandbox.js'

export interface ExplainRequest {
  readonly method: string
  readonly target: string
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly body: string
}

export interface ChainStep {
  readonly step: string
  /** The configuration that decides it (variables and route options, resolved). */
  readonly config: string
}

export interface ExplainReport {
  readonly request: { readonly method: string, readonly target: string }
  /** The path as backends read it (decoded, dot segments and `;` parameters resolved), or why it has no single reading. */
  readonly canonicalPath: string
  readonly route: { readonly prefix: string, readonly file: string } | null
  readonly whyNoRoute?: string
  readonly chain: readonly ChainStep[]
  readonly verdict: { readonly status: number, readonly code: string | null, readonly decidedBy: string }
  /** What the route's upstream would have received, or null when nothing reached it. */
  readonly upstream: { readonly route: string, readonly method: string, readonly target: string, readonly headers: Readonly<Record<string, string>> } | null
  readonly problems: readonly Problem[]
}

/** `'GET /orders/1'` plus `name: value` headers. */
export function parseRequestLine (line: string, headers: readonly string[]): ExplainRequest {
  const m = /^([A-Za-z]+)\s+(\S+)$/.exec(line.trim())
  if (m === null) throw new Error(`"${line}" is not "METHOD /path"`)
  return { method: (m[1] as string).toUpperCase(), target: m[2] as string, headers: headers.map(splitHeader), body: '' }
}

function splitHeader (h: string): [string, string] {
  const i = h.indexOf(':')
  if (i <= 0) throw new Error(`header "${h}" is not "name: value"`)
  return [h.slice(0, i).trim(), h.slice(i + 1).trim()]
}

/** A raw HTTP/1.1 request (request line, headers, blank line, body); bare LF line ends accepted. */
export function parseRawRequest (raw: string): ExplainRequest {
  const text = raw.replace(/\r?\n/g, '\r\n')
  const end = text.indexOf('\r\n\r\n')
  const head = end === -1 ? text.trimEnd() : text.slice(0, end)
  const [first = '', ...lines] = head.split('\r\n')
  const m = /^([A-Za-z]+) (\S+)(?: HTTP\/1\.[01])?$/.exec(first)
  if (m === null) throw new Error(`"${first}" is not a request line`)
  return { method: (m[1] as string).toUpperCase(), target: m[2] as string, headers: lines.filter((l) => l !== '').map(splitHeader), body: end === -1 ? '' : text.slice(end + 4) }
}

/** The codes each step of the chain answers with (prefixes), in chain order. */
const CODE_STEP: ReadonlyArray<readonly [RegExp, string]> = [
  [/^GW_OVERLOADED$/, 'overload'],
  [/^GW_IP_/, 'ip-filter'],
  [/^GW_REQUEST_BODY_TOO_LARGE$/, 'proxy (body limit)'],
  [/^GW_REQUEST_/, 'request-guard'],
  [/^GW_ROUTE_NOT_FOUND$/, 'router (no route)'],
  [/^GW_CORS_/, 'cors'],
  [/^GW_AUTH_/, 'auth'],
  [/^GW_RATE_LIMIT/, 'rate limit (ip-rate-limit or route-rate-limit)'],
  [/^GW_INSPECT_/, 'inspect'],
  [/^GW_(UPSTREAM|ROUTE_OVERLOADED|CLIENT_GONE|WEBSOCKET)/, 'proxy']
]

function decidedBy (status: number, code: string | null, reached: boolean): string {
  if (reached) return 'forwarded to the upstream'
  if (code === null) return status === 0 ? 'no answer (connection closed)' : 'the gateway (no error code)'
  return CODE_STEP.find(([re]) => re.test(code))?.[1] ?? 'the gateway'
}

function canonical (target: string): { path: string, segments: string[] | undefined } {
  const path = target.split('?')[0] as string
  const segments = readPath(path)
  if (segments === AMBIGUOUS) return { path: 'ambiguous (backends read it differently; the request guard refuses it in PATH_CHECK=strict)', segments: undefined }
  return { path: '/' + segments.join('/'), segments }
}

/** The route whose prefix the canonical path falls under (longest prefix, segment boundary). */
function matchRoute (segments: string[] | undefined, routes: readonly EffectiveRoute[]): EffectiveRoute | undefined {
  if (segments === undefined) return undefined
  const path = '/' + segments.join('/')
  return [...routes]
    .filter((r) => r.prefix === '/' || path === r.prefix || path.startsWith(r.prefix + '/'))
    .sort((a, b) => b.prefix.length - a.prefix.length)[0]
}

interface ChainFacts { pathCheck: string, publicHosts: string, ipAllow: string, ipDeny: string, ipLimit: string }

/** What decides each request-time step of the chain, for one route (GATEWAY_CHAIN order). */
function stepConfig (name: string, r: EffectiveRoute | undefined, env: ChainFacts): string | undefined {
  switch (name) {
    case 'portcullis-overload': return 'event-loop and heap pressure: 503'
    case 'portcullis-ip-filter': return `IP_ALLOW=${env.ipAllow} IP_DENY=${env.ipDeny}${r !== undefined && (r.ipFilter.allow.length + r.ipFilter.deny.length) > 0 ? `; route allow=${r.ipFilter.allow.join(',')} deny=${r.ipFilter.deny.join(',')}` : ''}`
    case 'portcullis-ip-rate-limit': return env.ipLimit
    case 'portcullis-request-guard': return `PATH_CHECK=${env.pathCheck} PUBLIC_HOSTS=${env.publicHosts}; framing, sizes, upgrades`
    case 'portcullis-cors': return r === undefined ? undefined : r.cors === false ? 'off' : `${r.cors.origins.join(',')}${r.cors.credentials ? ' +credentials' : ''}`
    case 'portcullis-auth': return r === undefined ? undefined : describeAuth(r)
    case 'portcullis-route-rate-limit': return r === undefined ? undefined : describeRateLimit(r)
    case 'portcullis-inspect': return r === undefined ? undefined : describeInspect(r)
    case 'portcullis-proxy': return r === undefined ? undefined : `${r.methods.join(',')} -> ${r.upstreams.join(' ')}${r.rewritePrefix !== undefined ? ` (prefix rewritten to "${r.rewritePrefix}")` : ' (prefix stripped)'}; body ${r.body.handling}, max ${r.body.limit} B; retries ${r.retries}`
    default: return undefined // response-side or bookkeeping plugins (logging, metrics, headers)
  }
}

/** The steps that can decide a request, in the gateway's chain order (src/chain.ts). */
function chainFor (r: EffectiveRoute | undefined, config: GatewayConfig, env: ChainFacts): ChainStep[] {
  const steps: ChainStep[] = []
  for (const link of GATEWAY_CHAIN) {
    if (link.options(config) === undefined) continue
    const decides = stepConfig(link.name, r, env)
    if (decides !== undefined) steps.push({ step: link.name.replace(/^portcullis-/, ''), config: decides })
  }
  if (r === undefined) steps.push({ step: 'router', config: 'no route: 404 GW_ROUTE_NOT_FOUND' })
  return steps
}

function serialise (req: ExplainRequest): string {
  const headers = [...req.headers]
  if (!headers.some(([n]) => n.toLowerCase() === 'host')) headers.unshift(['host', 'localhost'])
  if (!headers.some(([n]) => n.toLowerCase() === 'connection')) headers.push(['connection', 'close'])
  if (req.body !== '' && !headers.some(([n]) => /^(content-length|transfer-encoding)$/i.test(n))) headers.push(['content-length', String(Buffer.byteLength(req.body, 'latin1'))])
  return `${req.method} ${req.target} HTTP/1.1\r\n${headers.map(([n, v]) => `${n}: ${v}`).join('\r\n')}\r\n\r\n${req.body}`
}

const SHOWN_UPSTREAM_HEADERS = /^(host|x-consumer-|x-forwarded-|forwarded|x-request-id|content-length|transfer-encoding|authorization|x-api-key|cookie)/

export async function explain (env: NodeJS.ProcessEnv, req: ExplainRequest, routesDir?: string): Promise<ExplainReport> {
  const { sandbox, problems } = await startSandbox(env, routesDir !== undefined ? { routesDir } : {})
  const { path, segments } = canonical(req.target)
  if (sandbox === undefined) {
    return { request: { method: req.method, target: req.target }, canonicalPath: path, route: null, chain: [], verdict: { status: 0, code: null, decidedBy: 'invalid configuration' }, upstream: null, problems }
  }
  try {
    const route = matchRoute(segments, sandbox.routes)
    const c = sandbox.config
    const res = await sendRaw(sandbox.port, Buffer.from(serialise(req), 'latin1'))
    const hit: Received | undefined = sandbox.received[0]
    let code: string | null = null
    try { code = (JSON.parse(res.body) as { code?: string }).code ?? null } catch {}
    const reachedRoute = hit === undefined ? undefined : sandbox.routes[hit.route]
    const matched = reachedRoute ?? route
    const headers: Record<string, string> = {}
    if (hit !== undefined) {
      for (const [k, v] of Object.entries(hit.headers)) {
        if (SHOWN_UPSTREAM_HEADERS.test(k)) headers[k] = /^(authorization|x-api-key|cookie)$/.test(k) ? '[present]' : String(v)
      }
    }
    return {
      request: { method: req.method, target: req.target },
      canonicalPath: path,
      route: matched === undefined ? null : { prefix: matched.prefix, file: matched.file },
      ...(matched === undefined ? { whyNoRoute: segments === undefined ? 'the path has no single reading' : `no route prefix covers ${path} (prefixes: ${sandbox.routes.map((r) => r.prefix).join(', ')})` } : {}),
      chain: chainFor(matched, c, {
        pathCheck: c.pathCheck,
        publicHosts: c.publicHosts?.join(',') ?? '(any)',
        ipAllow: c.ipFilter.allow.join(',') || '(any)',
        ipDeny: c.ipFilter.deny.join(',') || '(none)',
        ipLimit: `${c.rateLimit.ipMax} per ${c.rateLimit.ipTimeWindow} per client IP (IP_RATE_LIMIT_MAX, IP_RATE_LIMIT_WINDOW)`
      }),
      verdict: { status: res.status, code, decidedBy: decidedBy(res.status, code, hit !== undefined) },
      upstream: hit === undefined || reachedRoute === undefined ? null : { route: reachedRoute.prefix, method: hit.method, target: hit.target, headers },
      problems: []
    }
  } finally {
    await sandbox.close()
  }
}

export function formatExplain (r: ExplainReport): string {
  const lines: string[] = []
  for (const p of r.problems) lines.push(`error    ${p.source === '' ? '' : `${p.source}: `}${p.message}`)
  if (r.problems.length > 0) return lines.join('\n') + '\n'
  lines.push(`request         ${r.request.method} ${r.request.target}`)
  lines.push(`canonical path  ${r.canonicalPath}`)
  lines.push(`route           ${r.route === null ? `none: ${r.whyNoRoute ?? ''}` : `${r.route.prefix} (${r.route.file})`}`)
  lines.push('chain')
  r.chain.forEach((s, i) => lines.push(`  ${String(i + 1).padStart(2)}. ${s.step.padEnd(14)} ${s.config}`))
  lines.push(`verdict         ${r.verdict.status}${r.verdict.code !== null ? ` ${r.verdict.code}` : ''}: ${r.verdict.decidedBy === 'forwarded to the upstream' ? '' : 'refused by '}${r.verdict.decidedBy}`)
  if (r.upstream !== null) {
    lines.push(`upstream gets   ${r.upstream.method} ${r.upstream.target} (route ${r.upstream.route})`)
    for (const [k, v] of Object.entries(r.upstream.headers)) lines.push(`                ${k}: ${v}`)
  } else {
    lines.push('upstream gets   nothing')
  }
  return lines.join('\n') + '\n'
}
