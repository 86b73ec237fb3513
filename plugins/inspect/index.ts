/**
 * portcullis-inspect: request inspection (a WAF) with libddwaf and Portcullis's own ruleset.
 *
 * Purpose: block (or, in detect mode, log and count) SQL injection, XSS, path traversal / file
 * inclusion, command injection, PHP/Java/Node code injection and friends before they reach the
 * handler or the upstream. One engine per plugin instance (built with the first route that
 * inspects, or at registration when an operator ruleset is configured; disposed in onClose), one
 * engine context per evaluation. With the built-in ruleset (or any cacheable one), the phases that
 * reach the engine in one turn of the event loop are judged together in one run at setImmediate,
 * and one by one only when that run matches or times out (scheduler.ts).
 * Hooks (route-level, attached in `onRoute` only to routes that carry `config.inspect`):
 *   onRequest `inspectOnRequest`: decoded path, query, headers (all but credentials and framing),
 *     cookies; runs after every instance-level onRequest hook and after the route-level hooks
 *     of plugins registered before it: register authentication and the route rate limit first, so
 *     a refused or limited request costs no inspection.
 *   preValidation `inspectBody` (routes with `inspect.body: true`): the body, a Buffer on proxied
 *     routes (Content-Encoding undone within the inspection bound, decoded per its charset, parsed
 *     by content type: JSON, urlencoded, multipart, XML, else raw text) or whatever a host app's
 *     parser produced. The upstream receives the original bytes.
 * Config key: `config.inspect` (`false` | `{ mode?, body?, contentEncoding?, exclude?, detect? }`). A route
 * without it is untouched (no hook, no cost); `defineRoute()` routes always carry one (default block).
 * Errors: GW_INSPECT_BLOCKED (403, carries `requestId`), GW_INSPECT_BODY_INVALID (400: JSON
 * prototype poisoning, duplicate keys, depth, key count, undecodable coded body),
 * GW_INSPECT_TOO_LARGE (413), GW_INSPECT_ENCODING_UNSUPPORTED and GW_INSPECT_CHARSET_UNSUPPORTED
 * (415) (these three in block mode only), GW_INSPECT_CONFIG_INVALID (startup). Logs name rule ids
 * and families, never the payload.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, onRequestHookHandler, preValidationHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { inspectMatch } from '../../lib/signals.js'
import { compileOptions, schemaProblems } from '../../lib/validate.js'
import { createEngine, type InspectEngine, type InspectMatch, type InspectResult } from './engine.js'
import { decodeBody, parseContentEncoding, type Coding } from './decode.js'
import { InspectBlockedError, InspectBodyInvalidError, InspectCharsetUnsupportedError, InspectEncodingUnsupportedError, InspectTooLargeError, pluginConfigError } from '../../lib/errors.js'
import { Collected, InspectLimitError, VerdictCache, collectBody, collectHeaders, collectUrl, rawBodyLimit, type ExtractLimits } from './extract.js'
import { JointScheduler } from './scheduler.js'
import { legacyExcludeProblems, parseField, splitBody, splitRequest, tuningProblems, type FieldExclusion, type FieldRef, type PhaseSplit } from './fields.js'
import { InspectOptionsSchema, InspectRouteConfigSchema, type InspectOptions, type InspectPluginOptions, type InspectRouteConfig } from './schema.js'
import { appendHook, routeName } from '../../lib/route-hooks.js'

const invalid = pluginConfigError('Invalid inspection configuration', 'GW_INSPECT_CONFIG_INVALID')

export { createEngine, evaluateRequest, InspectEngine, BUILTIN_RULES_FILE } from './engine.js'
export type { InspectMatch, InspectResult } from './engine.js'
export { collectRequest, InspectLimitError, type ExtractLimits, type RequestLike } from './extract.js'
export type { InspectPluginOptions, InspectOptions, InspectRouteConfig, InspectExclusion } from './schema.js'
export { parseField, tuningProblems, type FieldRef } from './fields.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's inspection policy (portcullis-inspect); absent = not inspected. */
    inspect?: InspectRouteConfig
  }
}

/** One field with exclusions, and the engine filters of its rules (plus the rule-wide ones). */
interface CompiledField extends FieldExclusion {
  readonly filter: string
  /** The same with the route's detect-mode rules off too (engines whose rules share a type). */
  readonly detectFilter: string | undefined
}

/**
 * A route's exclusions and detect-mode rules, precomputed. A match of an excluded rule makes the
 * phase judged again (`recheck`): everything but the excluded fields with the rule-wide
 * exclusions off, and each excluded field's values alone with its rules off too. A rule matching
 * an excluded field may have stopped there, before a field where it still applies.
 */
interface Tuning {
  /** Rules excluded somewhere in the URL and headers phase (a field there, or everywhere). */
  readonly requestRules: ReadonlySet<string>
  /** Rules excluded somewhere in the body phase. */
  readonly bodyRules: ReadonlySet<string>
  /** Rules excluded on every field. */
  readonly wide: ReadonlySet<string>
  readonly wideFilter: string | undefined
  readonly wideDetectFilter: string | undefined
  readonly requestFields: readonly CompiledField[]
  readonly bodyFields: readonly CompiledField[]
  /** Rules in detect mode on this route. */
  readonly detect: ReadonlySet<string> | undefined
  /** Whether a match of detect-mode rules only is judged again without them (shared rule types). */
  readonly recheckDetect: boolean
}

/** A route's precomputed policy. */
interface RoutePolicy {
  readonly block: boolean
  readonly mode: 'block' | 'detect'
  readonly tuning: Tuning | undefined
  /** Decode coded bodies for inspection (else refuse them with 415). */
  readonly decode: boolean
  /**
   * Bodies are inspected: a declared uncoded length past what inspection parses is refused (or,
   * in detect mode, passed) from the headers, before `100 Continue` and before any body byte.
   */
  readonly maxDeclaredBody: number | undefined
}

type Phase = 'request' | 'body'

/** What a phase waiting for a joint run needs to go on with its request. */
interface PhaseWaiter {
  readonly request: FastifyRequest
  readonly policy: RoutePolicy
  readonly phase: Phase
  readonly done: HookHandlerDoneFunction
}

/** The plugin's engine and the verdict cache of its clean values (absent when not cacheable). */
interface LoadedEngine {
  readonly engine: InspectEngine
  readonly cache: VerdictCache | undefined
}

function contentTypeOf (request: FastifyRequest): string | undefined {
  const ct = request.headers['content-type']
  return Array.isArray(ct) ? ct[0] : ct
}

async function gatewayInspect (fastify: FastifyInstance, rawOptions: InspectPluginOptions): Promise<void> {
  const options = compileOptions<InspectOptions>(InspectOptionsSchema, rawOptions, invalid)
  const limits: ExtractLimits = Object.freeze({
    maxInspectBytes: options.maxInspectBytes,
    maxBodyDepth: options.maxBodyDepth,
    maxBodyKeys: options.maxBodyKeys
  })
  const timeoutMicros = options.timeoutMs * 1000

  // The engine (about 11 MB of native memory with the built-in ruleset) is built with the first
  // route that inspects, so a gateway whose routes inspect nothing never holds one. An operator
  // ruleset is loaded at once: its problems are startup errors even before a route uses it.
  let loaded: LoadedEngine | undefined
  function load (): LoadedEngine {
    if (loaded !== undefined) return loaded
    let engine: InspectEngine
    try {
      engine = createEngine(options.rulesFile)
    } catch (err) {
      throw invalid([`ruleset: ${err instanceof Error ? err.message : 'cannot be loaded'}`], err)
    }
    const unknown = tuningProblems({ detect: options.detectRules }, engine.ruleIds, '').map((p) => `detectRules${p.slice('.detect'.length)}`)
    if (unknown.length > 0) {
      engine.dispose()
      throw invalid([`${unknown.join('; ')} (INSPECT_DETECT_RULES)`])
    }
    const cache = engine.cacheable && options.verdictCacheSize > 0 ? new VerdictCache(options.verdictCacheSize) : undefined
    fastify.log.debug({ verdictCache: cache === undefined ? 'off' : options.verdictCacheSize }, 'inspection engine loaded')
    loaded = { engine, cache }
    return loaded
  }
  if (options.rulesFile !== undefined) load()
  // Phases still waiting for a joint run are judged before the engine goes.
  fastify.addHook('onClose', async function inspectClose () {
    try {
      joint.flush()
    } finally {
      loaded?.engine.dispose()
    }
  })

  /**
   * A phase judged again for a route's exclusions: everything but the excluded fields with the
   * rule-wide exclusions off, and each excluded field present alone with its own off too.
   * `withDetect`: the route's detect-mode rules off as well. Undefined when the phase cannot be
   * read again (its first verdict then stands, stricter).
   */
  function recheck (request: FastifyRequest, tuning: Tuning, phase: Phase, withDetect: boolean): InspectResult | undefined {
    const engine = (loaded as LoadedEngine).engine
    let split: PhaseSplit<CompiledField> | undefined
    try {
      if (phase === 'request') {
        split = splitRequest(request.url, request.headers, tuning.requestFields, limits, engine.wordScreen)
      } else {
        const held = heldBodies.get(request)
        if (held === undefined) return undefined
        split = splitBody(held.body, held.contentType, tuning.bodyFields, limits, engine.wordScreen)
        if (split === undefined) {
          // A body without known fields (XML, text, not JSON after all) is judged whole.
          const rest = new Collected(limits.maxInspectBytes, undefined, engine.wordScreen)
          collectBody(rest, held.body, held.contentType, limits)
          split = { rest, fields: [] }
        }
      }
    } catch {
      return undefined
    }
    const results = [engine.evaluateWithout(split.rest, withDetect ? tuning.wideDetectFilter : tuning.wideFilter, timeoutMicros)]
    for (const f of split.fields) results.push(engine.evaluateWithout(f.c, withDetect ? f.exclusion.detectFilter : f.exclusion.filter, timeoutMicros))
    const seen = new Set<string>()
    const matches: InspectMatch[] = []
    let timeout = false
    for (const r of results) {
      timeout ||= r.timeout
      for (const m of r.matches) {
        if (seen.has(m.ruleId)) continue
        seen.add(m.ruleId)
        matches.push(m)
      }
    }
    return { matches, timeout }
  }

  /** The matches (and timeout) that stand once the route's exclusions are applied. */
  function tuned (request: FastifyRequest, policy: RoutePolicy, tuning: Tuning, result: InspectResult, phase: Phase): InspectResult {
    let out = result
    const excluded = phase === 'request' ? tuning.requestRules : tuning.bodyRules
    if (!result.timeout && result.matches.some((m) => excluded.has(m.ruleId))) {
      out = recheck(request, tuning, phase, false) ?? { matches: result.matches.filter((m) => !tuning.wide.has(m.ruleId)), timeout: false }
    }
    const detect = tuning.detect
    if (detect !== undefined && tuning.recheckDetect && policy.block && !out.timeout && out.matches.length > 0 && out.matches.every((m) => detect.has(m.ruleId))) {
      // Rules sharing a type report one match per run: a detect-mode one may hide another.
      const again = recheck(request, tuning, phase, true)
      if (again === undefined) return out
      const ids = new Set(out.matches.map((m) => m.ruleId))
      return { matches: [...out.matches, ...again.matches.filter((m) => !ids.has(m.ruleId))], timeout: again.timeout }
    }
    return out
  }

  /** Logs, publishes and (block mode) throws for one evaluation's outcome. */
  function judge (request: FastifyRequest, policy: RoutePolicy, result: InspectResult, phase: Phase): void {
    if (result.matches.length === 0 && !result.timeout) return
    const tuning = policy.tuning
    if (tuning !== undefined) result = tuned(request, policy, tuning, result, phase)
    const matches = result.matches
    if (matches.length === 0 && !result.timeout) return
    const detect = tuning?.detect
    const detected = detect === undefined ? [] : matches.filter((m) => detect.has(m.ruleId))
    const blocked = policy.block && (result.timeout || detected.length < matches.length)
    const route = request.routeOptions.url ?? ''
    if (inspectMatch.hasSubscribers) {
      for (const m of matches) inspectMatch.publish({ route, ruleId: m.ruleId, family: m.family, blocked: blocked && detect?.has(m.ruleId) !== true })
      if (result.timeout) inspectMatch.publish({ route, ruleId: 'engine-timeout', family: 'timeout', blocked })
    }
    const fields: Record<string, unknown> = { rules: matches.map((m) => m.ruleId), families: [...new Set(matches.map((m) => m.family))], timeout: result.timeout, mode: policy.mode, phase }
    if (detected.length > 0) fields.detect = detected.map((m) => m.ruleId)
    request.log.info({ inspect: fields }, blocked ? 'request blocked by inspection' : 'inspection match (detect mode)')
    if (blocked) throw new InspectBlockedError()
  }

  /** Turns an extraction refusal into the coded client error (or a log line in detect mode). */
  function refuse (request: FastifyRequest, policy: RoutePolicy, err: unknown, phase: Phase): void {
    if (!(err instanceof InspectLimitError)) throw err
    const reason = err.reason
    // What inspection cannot read (too much, a coding or charset it does not decode) is refused in
    // block mode and passed, logged, in detect mode.
    if (reason === 'size' || reason === 'encoding' || reason === 'charset') {
      request.log.info({ inspect: { limit: reason, mode: policy.mode, phase } }, policy.block ? 'request not inspectable' : 'request not inspectable (detect mode, passed)')
      if (!policy.block) return
      if (reason === 'size') throw new InspectTooLargeError()
      if (reason === 'encoding') throw new InspectEncodingUnsupportedError()
      throw new InspectCharsetUnsupportedError()
    }
    // Structural body problems are refused in every mode: they are input validation, not rules.
    request.log.info({ inspect: { limit: err.reason, phase } }, 'request body refused by inspection')
    throw new InspectBodyInvalidError()
  }

  /** Evaluates one phase alone, remembering the values of a clean evaluation. */
  function evaluate (engine: InspectEngine, c: Collected): InspectResult {
    const result = engine.evaluate(c, timeoutMicros)
    if (result.matches.length === 0 && !result.timeout) c.rememberClean()
    return result
  }

  /** Runs `check` (judge or refuse: they throw the client error) and continues, or fails, the request. */
  function proceed<T> (check: (request: FastifyRequest, policy: RoutePolicy, outcome: T, phase: Phase) => void, request: FastifyRequest, policy: RoutePolicy, outcome: T, phase: Phase, done: HookHandlerDoneFunction): void {
    try {
      check(request, policy, outcome, phase)
    } catch (err) {
      done(err as Error)
      return
    }
    done()
  }

  /** Goes on with a waiting phase's request: judged on `result`, or failed with `err` when the engine threw. */
  function continuePending (w: PhaseWaiter, result: InspectResult | undefined, err: unknown): void {
    if (result === undefined) w.done(err as Error)
    else proceed(judge, w.request, w.policy, result, w.phase, w.done)
  }

  const joint = new JointScheduler<PhaseWaiter, Collected, InspectEngine>({ engine: () => loaded?.engine, evaluate, settle: continuePending, timeoutMicros })
  /** Bodies of routes with body exclusions, held (until the request goes) for a recheck. */
  const heldBodies = new WeakMap<FastifyRequest, { body: unknown, contentType: string | undefined }>()

  function makeHooks (policy: RoutePolicy, engine: InspectEngine, cache: VerdictCache | undefined): { onRequest: onRequestHookHandler, preValidation: preValidationHookHandler } {
    /** Judges a collected phase: at the next joint run when the ruleset allows it, else now. */
    function judgeCollected (request: FastifyRequest, c: Collected, phase: Phase, done: HookHandlerDoneFunction): void {
      if (c.empty) {
        done()
      } else if (engine.cacheable) {
        joint.defer(c, { request, policy, phase, done })
      } else {
        proceed(judge, request, policy, evaluate(engine, c), phase, done)
      }
    }
    function inspectOnRequest (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
      const c = new Collected(limits.maxInspectBytes, cache, engine.wordScreen)
      try {
        collectUrl(c, request.url)
        collectHeaders(c, request.headers)
        const max = policy.maxDeclaredBody
        if (max !== undefined) {
          const declared = request.headers['content-length']
          // Past BODY_LIMIT too, the body limit answers with its own code.
          if (declared !== undefined && request.headers['content-encoding'] === undefined && Number(declared) > max && !(Number(declared) > request.routeOptions.bodyLimit)) {
            if (policy.block) reply.header('connection', 'close')
            throw new InspectLimitError('size')
          }
        }
      } catch (err) {
        proceed(refuse, request, policy, err, 'request', done)
        return
      }
      judgeCollected(request, c, 'request', done)
    }
    function judgeBody (request: FastifyRequest, body: unknown, done: HookHandlerDoneFunction): void {
      const c = new Collected(limits.maxInspectBytes, cache, engine.wordScreen)
      if (policy.tuning !== undefined && policy.tuning.bodyRules.size > 0) heldBodies.set(request, { body, contentType: contentTypeOf(request) })
      try {
        collectBody(c, body, contentTypeOf(request), limits)
      } catch (err) {
        proceed(refuse, request, policy, err, 'body', done)
        return
      }
      judgeCollected(request, c, 'body', done)
    }
    function inspectBody (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
      const body: unknown = request.body
      if (body === undefined || body === null) {
        done()
        return
      }
      const coding = request.headers['content-encoding']
      if (coding === undefined || !Buffer.isBuffer(body) || body.length === 0) {
        judgeBody(request, body, done)
        return
      }
      // A coded body is judged as the backend will read it, decoded; the upstream gets the original bytes.
      let codings: Coding[]
      try {
        codings = parseContentEncoding(coding)
        if (codings.length > 0 && !policy.decode) throw new InspectLimitError('encoding')
      } catch (err) {
        proceed(refuse, request, policy, err, 'body', done)
        return
      }
      if (codings.length === 0) {
        judgeBody(request, body, done)
        return
      }
      decodeBody(body, codings, rawBodyLimit(limits)).then(
        (decoded) => { judgeBody(request, decoded, done) },
        (err: unknown) => { proceed(refuse, request, policy, err, 'body', done) }
      )
    }
    return { onRequest: inspectOnRequest, preValidation: inspectBody }
  }

  fastify.addHook('onRoute', function inspectOnRoute (routeOptions) {
    const config = routeOptions.config
    const raw: unknown = config?.inspect
    if (raw === undefined || raw === false) return
    const where = routeName(routeOptions)
    const problems = [...schemaProblems(InspectRouteConfigSchema, raw, 'config.inspect'), ...legacyExcludeProblems(raw, 'config.inspect')]
    if (problems.length > 0) throw invalid([`${where}: ${problems.join('; ')}`])
    const policy = raw as Exclude<InspectRouteConfig, false>
    const { engine, cache } = load()
    const mode = policy.mode ?? options.mode
    const compiled: RoutePolicy = Object.freeze({
      block: mode === 'block',
      mode,
      tuning: compileTuning(policy, options.detectRules, engine, where),
      decode: policy.contentEncoding !== 'refuse',
      maxDeclaredBody: policy.body === true ? rawBodyLimit(limits) : undefined
    })
    const hooks = makeHooks(compiled, engine, cache)
    routeOptions.onRequest = appendHook(routeOptions.onRequest, hooks.onRequest)
    if (policy.body === true) routeOptions.preValidation = appendHook(routeOptions.preValidation, hooks.preValidation)
  })
}

/** A route's exclusions and detect-mode rules, compiled (undefined when it has none). */
function compileTuning (policy: Exclude<InspectRouteConfig, false>, detectRules: readonly string[], engine: InspectEngine, where: string): Tuning | undefined {
  const exclude = policy.exclude ?? []
  const detectIds = [...new Set([...(policy.detect ?? []), ...detectRules])]
  if (exclude.length === 0 && detectIds.length === 0) return undefined
  const problems = tuningProblems(policy, engine.ruleIds)
  if (problems.length > 0) throw Object.assign(invalid([`${where}: ${problems.join('; ')}`]), { problems })
  const wide = new Set<string>()
  const byField = new Map<string, { field: Exclude<FieldRef, { kind: 'all' }>, rules: Set<string> }>()
  for (const ex of exclude) {
    const field = parseField(ex.field) as FieldRef
    if (field.kind === 'all') {
      wide.add(ex.rule)
      continue
    }
    let entry = byField.get(ex.field)
    if (entry === undefined) {
      entry = { field, rules: new Set() }
      byField.set(ex.field, entry)
    }
    entry.rules.add(ex.rule)
  }
  const detect = detectIds.length > 0 ? new Set(detectIds) : undefined
  const recheckDetect = detect !== undefined && engine.sharedTypes
  const requestFields: CompiledField[] = []
  const bodyFields: CompiledField[] = []
  const requestRules = new Set(wide)
  const bodyRules = new Set(wide)
  for (const { field, rules } of byField.values()) {
    const off = [...wide, ...rules]
    const compiled: CompiledField = {
      field,
      filter: engine.filterFor(off) as string,
      detectFilter: recheckDetect ? engine.filterFor([...off, ...(detect as Set<string>)]) : undefined
    }
    const target = field.kind === 'body' ? bodyFields : requestFields
    target.push(compiled)
    for (const r of rules) (field.kind === 'body' ? bodyRules : requestRules).add(r)
  }
  return {
    requestRules,
    bodyRules,
    wide,
    wideFilter: engine.filterFor(wide),
    wideDetectFilter: recheckDetect ? engine.filterFor([...wide, ...(detect as Set<string>)]) : undefined,
    requestFields,
    bodyFields,
    detect,
    recheckDetect
  }
}

/**
 * Request inspection. Register before any route (its `onRoute` hook must see them), after
 * authentication and the route rate limit when they are used: `app.register(inspectPlugin,
 * { mode: config.inspect.mode, rulesFile: config.inspect.rulesFile })`. Needs no other plugin.
 */
export const inspectPlugin = fp(gatewayInspect, {
  name: 'portcullis-inspect',
  fastify: '5.x',
  dependencies: []
})
export default inspectPlugin
