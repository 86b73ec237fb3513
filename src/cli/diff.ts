/**
 * `portcullis diff OLD [NEW]`: what a change to the routes does to security. OLD and NEW are
 * route folders or git revisions of the routes folder (git-revision.ts); both are loaded with the
 * same environment through the gateway's own loader; routes are paired by host and prefix (a
 * route bound to hosts is shown as `host,host prefix`).
 */
import type { GatewayConfig } from '../config.js'
import { effectiveRoute, type EffectiveRoute } from './effective.js'
import { prepareSides, Scratch, type DiffSide, type PreparedSide } from './git-revision.js'
import { loadGatewayQuietly, type Problem } from './load.js'
import { describeAuth, describeContract, describeHosts, describeInspect, describeRateLimit } from './routes.js'

export type { DiffSide } from './git-revision.js'

export interface Change {
  readonly kind: 'weakens' | 'tightens' | 'changes'
  readonly prefix: string
  readonly what: string
}

export interface DiffReport {
  readonly old: DiffSide
  readonly new: DiffSide
  readonly changes: readonly Change[]
  readonly problems: { readonly old: readonly Problem[], readonly new: readonly Problem[] }
}

const MINUTE_MS = 60_000

function upstreamSchemes (r: EffectiveRoute): Set<string> {
  return new Set(r.upstreams.map((u) => new URL(u).protocol))
}

/** How a change names a route: its prefix, after its hosts when it is bound to some. */
function routeKey (r: EffectiveRoute): string {
  return r.hosts.length === 0 ? r.prefix : `${describeHosts({ hosts: [...r.hosts].sort() })} ${r.prefix}`
}

function compare (a: EffectiveRoute, b: EffectiveRoute, out: Change[]): void {
  const p = routeKey(b)
  const add = (kind: Change['kind'], what: string): void => { out.push({ kind, prefix: p, what }) }
  // Authentication
  if (a.auth !== false && b.auth === false) add('weakens', `lost authentication (was ${describeAuth(a)}, now public)`)
  else if (a.auth === false && b.auth !== false) add('tightens', `now requires authentication (${describeAuth(b)})`)
  else if (a.auth !== false && b.auth !== false) {
    const lost = a.auth.scopes.filter((s) => !(b.auth as { scopes: readonly string[] }).scopes.includes(s))
    const gained = b.auth.scopes.filter((s) => !(a.auth as { scopes: readonly string[] }).scopes.includes(s))
    if (lost.length > 0) add('weakens', `no longer requires scope ${lost.join(', ')}`)
    if (gained.length > 0) add('tightens', `now requires scope ${gained.join(', ')}`)
    const newStrategies = b.auth.strategies.filter((s) => !(a.auth as { strategies: readonly string[] }).strategies.includes(s))
    if (newStrategies.length > 0) add('weakens', `accepts another credential: ${newStrategies.join(', ')}`)
    if (a.auth.relation === 'all' && b.auth.relation !== 'all') add('weakens', 'one credential now suffices (relation all -> any)')
  }
  // Rate limit (requests per second, compared per key)
  const rate = (r: EffectiveRoute): number => r.rateLimit === false ? Infinity : (r.rateLimit.max + r.rateLimit.burst) / r.rateLimit.windowMs
  if (a.rateLimit !== false && b.rateLimit === false) add('weakens', `rate limit removed (was ${describeRateLimit(a)})`)
  else if (a.rateLimit === false && b.rateLimit !== false) add('tightens', `rate limit added (${describeRateLimit(b)})`)
  else if (a.rateLimit !== false && b.rateLimit !== false) {
    const ratio = rate(b) / rate(a)
    if (ratio >= 10) add('weakens', `rate limit raised ${ratio.toFixed(0)}x (${describeRateLimit(a)} -> ${describeRateLimit(b)})`)
    else if (ratio > 1) add('changes', `rate limit raised (${describeRateLimit(a)} -> ${describeRateLimit(b)})`)
    else if (ratio < 1) add('tightens', `rate limit lowered (${describeRateLimit(a)} -> ${describeRateLimit(b)})`)
    if (a.rateLimit.keyBy !== b.rateLimit.keyBy) add(b.rateLimit.keyBy === 'ip' && b.auth !== false ? 'weakens' : 'changes', `rate limit now counted per ${b.rateLimit.keyBy}`)
  }
  // Inspection
  const strength = (r: EffectiveRoute): number => r.inspect === false ? 0 : r.inspect.mode === 'detect' ? 1 : r.inspect.body ? 3 : 2
  if (strength(b) < strength(a)) add('weakens', `inspection ${describeInspect(a)} -> ${describeInspect(b)}`)
  else if (strength(b) > strength(a)) add('tightens', `inspection ${describeInspect(a)} -> ${describeInspect(b)}`)
  if (a.inspect !== false && b.inspect !== false) {
    const newExcl = b.inspect.exclude.filter((e) => !(a.inspect as { exclude: readonly string[] }).exclude.includes(e))
    if (newExcl.length > 0) add('weakens', `inspection rules excluded: ${newExcl.join(', ')}`)
  }
  // API contract
  const contractStrength = (r: EffectiveRoute): number => r.openapi === false ? 0 : r.openapi.mode === 'detect' ? 1 : 2
  if (contractStrength(b) < contractStrength(a)) add('weakens', `API contract ${describeContract(a)} -> ${describeContract(b)}`)
  else if (contractStrength(b) > contractStrength(a)) add('tightens', `API contract ${describeContract(a)} -> ${describeContract(b)}`)
  if (a.openapi !== false && b.openapi !== false) {
    if (a.openapi.unknownOperations === 'refuse' && b.openapi.unknownOperations === 'pass') add('weakens', 'API contract now passes undeclared operations')
    if (a.openapi.spec !== b.openapi.spec) add('changes', `API contract document ${a.openapi.spec} -> ${b.openapi.spec}`)
  }
  // CORS
  if (a.cors === false && b.cors !== false) add('weakens', `CORS opened to ${b.cors.origins.join(', ')}${b.cors.credentials ? ' with credentials' : ''}`)
  else if (a.cors !== false && b.cors === false) add('tightens', 'CORS removed')
  else if (a.cors !== false && b.cors !== false) {
    const added = b.cors.origins.filter((o) => !(a.cors as { origins: readonly string[] }).origins.includes(o))
    if (added.length > 0) add('weakens', `CORS widened to ${added.join(', ')}`)
    if (!a.cors.credentials && b.cors.credentials) add('weakens', 'CORS now allows credentials')
  }
  // Upstreams
  if (upstreamSchemes(a).has('https:') && !upstreamSchemes(a).has('http:') && upstreamSchemes(b).has('http:')) add('weakens', 'an upstream switched from https to http')
  const newTargets = b.upstreams.filter((u) => !a.upstreams.includes(u))
  if (newTargets.length > 0) add('changes', `new upstream ${newTargets.join(', ')}`)
  // Timeouts
  for (const k of ['connectMs', 'headersMs', 'bodyIdleMs'] as const) {
    if (b.timeouts[k] > MINUTE_MS && b.timeouts[k] > a.timeouts[k]) add('weakens', `timeout ${k} lengthened past a minute (${a.timeouts[k]} -> ${b.timeouts[k]} ms)`)
  }
  // Methods, IP filter, WebSocket
  const newMethods = b.methods.filter((m) => !a.methods.includes(m))
  if (newMethods.length > 0) add('weakens', `accepts more methods: ${newMethods.join(', ')}`)
  if (a.ipFilter.allow.length > 0 && b.ipFilter.allow.length === 0) add('weakens', 'IP allow-list removed')
  const lostDeny = a.ipFilter.deny.filter((d) => !b.ipFilter.deny.includes(d))
  if (lostDeny.length > 0) add('weakens', `IP deny entries removed: ${lostDeny.join(', ')}`)
  if (!a.websocket && b.websocket) add('changes', 'WebSocket upgrades now proxied')
  if (b.body.limit > a.body.limit) add('changes', `body limit raised ${a.body.limit} -> ${b.body.limit}`)
}

export function diffRoutes (oldRoutes: readonly EffectiveRoute[], newRoutes: readonly EffectiveRoute[]): Change[] {
  const out: Change[] = []
  // Routes of one prefix bound to different hosts are different routes (methods may split one
  // prefix among modules too: the last one of a key is compared).
  const before = new Map(oldRoutes.map((r) => [routeKey(r), r]))
  const after = new Map(newRoutes.map((r) => [routeKey(r), r]))
  for (const [prefix, b] of after) {
    const a = before.get(prefix)
    if (a === undefined) out.push({ kind: b.auth === false ? 'weakens' : 'changes', prefix, what: b.auth === false ? `new public route to ${b.upstreams.join(', ')}` : `new route (${describeAuth(b)}) to ${b.upstreams.join(', ')}` })
    else compare(a, b, out)
  }
  for (const prefix of before.keys()) if (!after.has(prefix)) out.push({ kind: 'tightens', prefix, what: 'route removed' })
  return out
}

async function effectiveRoutesOf (env: NodeJS.ProcessEnv, prepared: PreparedSide): Promise<{ routes: EffectiveRoute[], problems: readonly Problem[] }> {
  const shown = (p: Problem): Problem => ({ source: prepared.show(p.source), message: prepared.show(p.message) })
  if (prepared.dir === undefined) return { routes: [], problems: prepared.problems }
  const loaded = await loadGatewayQuietly(env, { routesDir: prepared.dir })
  try {
    const config = loaded.config as GatewayConfig | undefined
    return {
      routes: config === undefined ? [] : loaded.routes.map((r) => effectiveRoute(r, config)),
      problems: [...prepared.problems, ...loaded.problems.map(shown)]
    }
  } finally {
    await loaded.app?.close()
  }
}

/**
 * Compares OLD with NEW (NEW omitted: the working tree's routes folder). `routes` (--routes)
 * names the folder read at git revisions. Throws DiffUsageError for a wrong argument, an unknown
 * revision, a missing repository or a missing typescript package.
 */
export async function diff (env: NodeJS.ProcessEnv, oldArg: string, newArg?: string, routes?: string): Promise<DiffReport> {
  const scratch = new Scratch()
  try {
    const sides = await prepareSides(scratch, env, oldArg, newArg, routes)
    const a = await effectiveRoutesOf(env, sides.old)
    const b = await effectiveRoutesOf(env, sides.new)
    return { old: sides.old.side, new: sides.new.side, changes: diffRoutes(a.routes, b.routes), problems: { old: a.problems, new: b.problems } }
  } finally {
    scratch.remove()
  }
}

function describeSide (s: DiffSide): string {
  const where = s.revision !== undefined
    ? `${s.revision} (${s.shortCommit ?? ''}): ${s.folder}`
    : s.worktree === true ? `working tree: ${s.folder}` : `folder: ${s.folder}`
  return s.absent === true ? `${where} (no such folder: no routes)` : where
}

export function formatDiff (r: DiffReport): string {
  const lines: string[] = []
  // The git form names what was compared.
  if (r.old.revision !== undefined || r.new.revision !== undefined) lines.push(`old      ${describeSide(r.old)}`, `new      ${describeSide(r.new)}`)
  for (const p of r.problems.old) lines.push(`error    OLD ${p.source}: ${p.message}`)
  for (const p of r.problems.new) lines.push(`error    NEW ${p.source}: ${p.message}`)
  const order = { weakens: 0, changes: 1, tightens: 2 }
  for (const c of [...r.changes].sort((x, y) => order[x.kind] - order[y.kind])) lines.push(`${c.kind.padEnd(8)} ${c.prefix}: ${c.what}`)
  const weak = r.changes.filter((c) => c.kind === 'weakens').length
  lines.push(`${weak} weakening, ${r.changes.filter((c) => c.kind === 'tightens').length} tightening, ${r.changes.filter((c) => c.kind === 'changes').length} other`)
  return lines.join('\n') + '\n'
}
