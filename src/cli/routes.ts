/** `portcullis routes`: the effective route table, defaults resolved. */
import type { EffectiveRoute } from './effective.js'

function ms (n: number): string {
  return n % 1000 === 0 ? `${n / 1000}s` : `${n}ms`
}

export function describeAuth (r: EffectiveRoute): string {
  if (r.auth === false) return 'public'
  const s = r.auth.strategies.length === 0 ? 'none configured (refuses all)' : r.auth.strategies.join(r.auth.relation === 'all' ? '+' : '|')
  return r.auth.scopes.length > 0 ? `${s} scopes=${r.auth.scopes.join(',')}` : s
}

export function describeRateLimit (r: EffectiveRoute): string {
  if (r.rateLimit === false) return 'off'
  const l = r.rateLimit
  return `${l.max}/${l.window} per ${l.keyBy}${l.algorithm === 'gcra' ? ` gcra burst=${l.burst}` : ''} (${l.store})`
}

export function describeInspect (r: EffectiveRoute): string {
  if (r.inspect === false) return 'off'
  return `${r.inspect.mode} ${r.inspect.body ? 'url+headers+body' : 'url+headers'}${r.inspect.exclude.length > 0 ? ` exclude=${r.inspect.exclude.join(',')}` : ''}`
}

export function describeContract (r: EffectiveRoute): string {
  if (r.openapi === false) return 'off'
  const c = r.openapi
  return `${c.mode} ${c.spec}${c.responses !== 'off' ? ` responses=${c.responses}` : ''}${c.unknownOperations === 'pass' ? ' unknown=pass' : ''}`
}

/** The hosts a route answers: `*` for any host. */
export function describeHosts (r: Pick<EffectiveRoute, 'hosts'>): string {
  return r.hosts.length === 0 ? '*' : r.hosts.join(',')
}

export function routeRow (r: EffectiveRoute): Record<string, string> {
  return {
    host: describeHosts(r),
    prefix: r.prefix,
    methods: r.methods.join(','),
    upstream: r.upstreams.join(' ') + (r.rewritePrefix !== undefined ? ` (path ${r.rewritePrefix === '' ? 'stripped' : r.rewritePrefix})` : ''),
    auth: describeAuth(r),
    'rate limit': describeRateLimit(r),
    inspect: describeInspect(r),
    contract: describeContract(r),
    body: `${r.body.handling} max ${r.body.limit}B`,
    timeouts: `connect ${ms(r.timeouts.connectMs)} headers ${ms(r.timeouts.headersMs)} idle ${ms(r.timeouts.bodyIdleMs)} retries ${r.retries}`,
    websocket: r.websocket ? 'yes' : 'no',
    cors: r.cors === false ? 'off' : `${r.cors.origins.join(',')}${r.cors.credentials ? ' +credentials' : ''}`,
    file: r.file
  }
}

/** A plain-text table: one line per route, columns padded. */
export function formatTable (rows: ReadonlyArray<Record<string, string>>): string {
  if (rows.length === 0) return 'no routes\n'
  const cols = Object.keys(rows[0] as Record<string, string>)
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(width[i] as number)).join('  ').trimEnd()
  return [line(cols.map((c) => c.toUpperCase())), ...rows.map((r) => line(cols.map((c) => r[c] ?? '')))].join('\n') + '\n'
}
