/**
 * portcullis-openapi: positive security. A route with `config.openapi` enforces its API's OpenAPI
 * 3.0 / 3.1 contract: only declared operations, parameters and bodies reach the upstream.
 *
 * Startup: the document is loaded, validated and compiled when the route is registered (see
 * contract.ts); `ready()` fails with GW_CONFIG_INVALID (file and JSON pointer) when it is not valid.
 * Hooks (route-level, attached in `onRoute` to routes that carry `config.openapi`, after the
 * inspection plugin's):
 *   onRequest `contractOnRequest`: the operation (path as the upstream sees it, under the
 *     document's `servers` base paths; 404 / 405 for what it does not declare), the security
 *     requirements against `request.consumer` (the route's auth policy ran first and stays the
 *     floor), path, query, header and cookie parameters (style / explode, types coerced).
 *   preValidation `contractBody`: the body (a Buffer: routes with a contract buffer bodies up to
 *     BODY_LIMIT) against the operation's requestBody for its media type: JSON, urlencoded and
 *     multipart/form-data (multipart.ts) validated, XML and other declared types passed (XML
 *     counted as body-unvalidated); undeclared type 415, required body missing 400.
 *   onSend `contractResponse` (`responses: 'detect' | 'block'`): undeclared statuses, and JSON
 *     bodies the proxy buffered (at most RESPONSE_BUFFER_BYTES and 1 MiB) against the schema;
 *     streamed bodies are counted as unvalidated, never buffered here.
 * Config key: `config.openapi` (`false` | `{ spec, mode?, responses?, unknownOperations? }`),
 * `config.openapiPaths` (set by defineRoute(): public prefix -> upstream prefix).
 * Errors: GW_CONTRACT_VIOLATION (400, `violations`: `/query/limit: maximum`, never values),
 * GW_CONTRACT_UNKNOWN_OPERATION (404), GW_CONTRACT_METHOD_NOT_ALLOWED (405, Allow),
 * GW_REQUEST_UNSUPPORTED_MEDIA_TYPE (415), GW_CONTRACT_UNAUTHORIZED (401), GW_CONTRACT_FORBIDDEN
 * (403), GW_CONTRACT_RESPONSE (502). Signal: contractViolation (metrics).
 */
import { isAbsolute, resolve } from 'node:path'
import type { Readable } from 'node:stream'
import type { ErrorObject, ValidateFunction } from 'ajv'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, onRequestHookHandler, onSendHookHandler, preValidationHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import sjson from 'secure-json-parse'
import { ConfigError, ContractForbiddenError, ContractMethodNotAllowedError, ContractResponseError, ContractUnauthorizedError, ContractUnknownOperationError, ContractViolationError, UnsupportedMediaTypeError } from '../../lib/errors.js'
import { contentTypeDecoding } from '../../lib/charset.js'
import { hasDuplicateKeys } from '../../lib/json-keys.js'
import { rememberedJsonBody } from '../../lib/parsed-body.js'
import { contractViolation } from '../../lib/signals.js'
import { Value } from '@sinclair/typebox/value'
import { ContractLoadError, METHOD_FIELD, contractFor, foldQueryName, type Contract, type MediaCheck, type Operation, type SecurityScheme } from './contract.js'
import { readMultipart } from './multipart.js'
import { cookieValue, formObject, headerValue, parseCookies, parseQuery, pathValue, queryPollution, queryValue, type Cookies, type QueryValues } from './params.js'
import { OpenApiRouteConfigSchema, type OpenApiPathMapping, type OpenApiPolicy, type OpenApiRouteConfig } from './schema.js'
import type { Consumer } from '../../lib/consumer.js'
import { appendHook, routeName } from '../../lib/route-hooks.js'

export { ContractLoadError, contractFor, loadContract, type Contract } from './contract.js'
export { OpenApiRouteConfigSchema, OpenApiPolicySchema, type OpenApiRouteConfig, type OpenApiPolicy, type OpenApiPathMapping } from './schema.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's API contract (gateway-openapi); absent or false = not enforced. */
    openapi?: OpenApiRouteConfig
    /** Set by defineRoute(): how the public path maps to the upstream's. */
    openapiPaths?: OpenApiPathMapping
  }
}

/** Largest response body validated (a buffered response is at most RESPONSE_BUFFER_BYTES too). */
export const MAX_RESPONSE_VALIDATION_BYTES = 1024 * 1024
/** Violations listed in one answer (and in one log line). */
const MAX_VIOLATIONS = 10
const MAX_POINTER = 200

/** The operation a request matched, kept for the body and response phases (null: none). */
const kMatched = Symbol('portcullis.openapi.matched')
type WithMatched = FastifyRequest & { [kMatched]?: Operation | null }

/** Longest path and query whose clean parameter verdict is remembered. */
const URL_VERDICT_MAX_CHARS = 512
/** URLs remembered per generation (two generations: at most twice this many, 512 characters each). */
const URL_VERDICT_CAPACITY = 4096

/**
 * URLs whose parameters were found valid, so a repeated one (`?page=2`, `?status=open`) is not
 * parsed and validated again. Sound only for operations whose parameters are all in the URL
 * (path and query): the verdict then depends on nothing but the route, the method and the URL as
 * the upstream sees it. Only valid verdicts are kept, so a URL that breaks the contract is judged
 * every time. Two generations bound the memory, as the inspection plugin's clean verdicts do.
 */
class UrlVerdicts {
  private young = new Set<string>()
  private old = new Set<string>()

  has (key: string): boolean {
    if (this.young.has(key)) return true
    if (!this.old.has(key)) return false
    this.add(key)
    return true
  }

  add (key: string): void {
    this.young.add(key)
    if (this.young.size >= URL_VERDICT_CAPACITY) {
      this.old = this.young
      this.young = new Set()
    }
  }
}

interface RoutePolicy {
  /** Distinguishes routes in the shared URL verdicts. */
  readonly id: number
  readonly block: boolean
  readonly mode: 'block' | 'detect'
  readonly responses: 'off' | 'detect' | 'block'
  readonly refuseUnknown: boolean
  readonly strip: string
  readonly add: string
  readonly label: string
  contract: Contract | undefined
}

function escapePointer (s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1')
}

/** Ajv errors as `pointer: rule` lines under `prefix` (never the value). */
function describe (errors: readonly ErrorObject[] | null | undefined, prefix: string, hidden: 'readOnly' | 'writeOnly'): string[] {
  const out: string[] = []
  for (const e of errors ?? []) {
    let pointer = prefix + e.instancePath
    if (e.keyword === 'required') pointer += `/${escapePointer(String((e.params as { missingProperty?: string }).missingProperty ?? ''))}`
    // The declared member another spelling of it would stand for (the sent spelling is not echoed).
    if (e.keyword === 'portcullisAlias') pointer += `/${escapePointer(String((e.params as { property?: string }).property ?? ''))}`
    const rule = e.keyword === 'portcullisHidden' ? hidden : e.keyword === 'portcullisAlias' ? 'ambiguous' : e.keyword
    if (rule === 'if') continue
    const line = `${pointer.length > MAX_POINTER ? pointer.slice(0, MAX_POINTER) + '…' : pointer}: ${rule}`
    if (!out.includes(line)) out.push(line)
    if (out.length === MAX_VIOLATIONS) break
  }
  return out
}

/** Per the parameter's location, the group and a readable prefix: `/query/limit`. */
function kindOf (line: string): string {
  const m = /^\/(path|query|header|cookie|body)\b/.exec(line)
  return m === null ? 'body' : m[1] as string
}

function mediaTypeOf (request: FastifyRequest): string | undefined {
  const header = request.headers['content-type']
  if (header === undefined) return undefined
  const ct = Array.isArray(header) ? header[0] ?? '' : header
  const semi = ct.indexOf(';')
  return (semi === -1 ? ct : ct.slice(0, semi)).trim().toLowerCase()
}

/** A query string that may name a method override (any case, or percent-encoded). */
const OVERRIDE_HINT = /method|%/i

/** Whether an object (query values, a body) has a member frameworks read as a method override. */
function hasMethodField (fields: object): boolean {
  for (const k in fields) if (k.length >= 7 && foldQueryName(k) === METHOD_FIELD) return true
  return false
}

/** Declared one-valued header parameters whose header came on more than one line. */
function repeatedHeaders (op: Operation, raw: readonly string[]): string[] | undefined {
  let problems: string[] | undefined
  for (const p of op.params) {
    if (p.in !== 'header' || p.shape !== 'primitive' || p.json) continue
    let lines = 0
    for (let i = 0; i < raw.length; i += 2) if ((raw[i] as string).length === p.key.length && (raw[i] as string).toLowerCase() === p.key) lines++
    if (lines > 1) (problems ??= []).push(`/header/${p.key}: repeated`)
  }
  return problems
}

function findMedia (media: ReadonlyMap<string, MediaCheck>, type: string): MediaCheck | undefined {
  const exact = media.get(type)
  if (exact !== undefined) return exact
  const slash = type.indexOf('/')
  return media.get(`${type.slice(0, slash)}/*`) ?? media.get('*/*')
}

/** Whether the caller the auth plugin verified meets one alternative of the operation's security. */
function securityMet (op: Operation, request: FastifyRequest): 'ok' | 'unauthenticated' | 'forbidden' {
  if (op.security.length === 0) return 'ok'
  const consumer = request.consumer ?? null
  for (const alternative of op.security) {
    if (alternative.length === 0) return 'ok'
    if (consumer === null) continue
    let met = true
    for (const { scheme, scopes } of alternative) {
      if (!schemeMet(scheme, scopes, consumer)) {
        met = false
        break
      }
    }
    if (met) return 'ok'
  }
  return consumer === null ? 'unauthenticated' : 'forbidden'
}

/**
 * Whether the caller the auth plugin verified meets one security scheme with its scopes (roles,
 * for `mutualTLS`): bearer, OAuth 2 and OpenID Connect schemes by a JWT or an introspected token,
 * `apiKey` by an API key, `mutualTLS` by a verified client certificate. Basic and digest schemes,
 * and callers admitted by forward auth (the gateway cannot tell what the service checked), meet
 * none: the requirement fails closed.
 */
function schemeMet (scheme: SecurityScheme | undefined, scopes: readonly string[], consumer: Consumer): boolean {
  if (scheme === undefined) return false
  const strategy = consumer.strategy
  let met: boolean
  if (scheme.type === 'apiKey') met = strategy === 'apiKey'
  else if ((scheme.type === 'http' && scheme.scheme === 'bearer') || scheme.type === 'oauth2' || scheme.type === 'openIdConnect') met = strategy === 'jwt' || strategy === 'introspection'
  else if (scheme.type === 'mutualTLS') met = strategy === 'mtls'
  else met = false
  if (!met) return false
  for (const s of scopes) if (!consumer.scopes.includes(s)) return false
  return true
}

/** A response schema's validator (compiled on first use); undefined, logged, when it does not compile. */
function responseValidator (request: FastifyRequest, check: MediaCheck): ValidateFunction | undefined {
  try {
    return check.validate
  } catch (err) {
    request.log.warn({ err }, 'response schema of the API contract does not compile; responses pass unvalidated')
    return undefined
  }
}

/** Options of the plugin (none yet: every setting is per route). */
export type OpenApiPluginOptions = Record<string, never>

async function gatewayOpenApi (fastify: FastifyInstance): Promise<void> {
  const loading: Array<Promise<unknown>> = []
  const urlVerdicts = new UrlVerdicts()
  let routes = 0
  // Declared up front, so that setting it per request never changes a request object's shape
  // (which would make every other function touching requests slower).
  if (!fastify.hasRequestDecorator(kMatched)) fastify.decorateRequest(kMatched, null)

  fastify.addHook('onReady', async function contractReady () {
    await Promise.all(loading)
  })

  function publish (policy: RoutePolicy, operation: string, kind: string, blocked: boolean): void {
    if (contractViolation.hasSubscribers) contractViolation.publish({ route: policy.label, operation, kind, blocked })
  }

  /** Counts and logs, and in block mode throws, a request's violations. */
  function judge (request: FastifyRequest, policy: RoutePolicy, op: Operation | undefined, kind: string, problems: readonly string[], error: () => Error): void {
    const operation = op?.label ?? '(unknown)'
    const blocked = policy.block
    if (contractViolation.hasSubscribers) {
      if (kind === 'params') for (const k of new Set(problems.map(kindOf))) publish(policy, operation, k, blocked)
      else publish(policy, operation, kind, blocked)
    }
    request.log.debug({ contract: { operation, kind, violations: problems, mode: policy.mode } }, blocked ? 'request refused by the API contract' : 'API contract violation (detect mode)')
    if (blocked) throw error()
  }

  function checkParams (request: FastifyRequest, op: Operation, pathParams: Readonly<Record<string, string>>, query: string): string[] | undefined {
    const validate = op.validateParams
    let problems: string[] | undefined
    // Parsed once, when a parameter or the override check needs it.
    let q: QueryValues | undefined
    // `_method=DELETE` on a POST: Rails, Laravel, Symfony and Spring may run another operation.
    if (!op.declaresMethodParam && query !== '' && OVERRIDE_HINT.test(query) && hasMethodField(q = parseQuery(query))) {
      (problems ??= []).push(`/query/${METHOD_FIELD}: method-override`)
    }
    if (validate === undefined) return problems
    // Only the groups the validator reads (each must be present for its `required`).
    const data: Record<string, Record<string, unknown>> = {}
    for (const group of op.paramGroups) data[group] = {}
    let cookies: Cookies | undefined
    for (const p of op.params) {
      let value: unknown
      if (p.in === 'path') {
        const raw = pathParams[p.name]
        value = raw === undefined ? undefined : pathValue(p, raw)
        if (raw !== undefined && value === undefined) (problems ??= []).push(`/path/${p.key}: encoding`)
      } else if (p.in === 'query') {
        value = queryValue(p, q ??= parseQuery(query))
      } else if (p.in === 'header') {
        value = headerValue(p, request.headers)
      } else {
        cookies ??= parseCookies(request.headers.cookie)
        value = cookieValue(p, cookies)
        if (cookies.repeated?.has(p.name) === true) (problems ??= []).push(`/cookie/${p.key}: repeated`)
      }
      if (value !== undefined) (data[p.in] as Record<string, unknown>)[p.key] = value
    }
    // Parameter pollution: what a backend could read other than what is validated here.
    if (op.queryNames !== undefined) {
      const polluted = queryPollution(op.queryNames, q ?? parseQuery(query))
      if (polluted !== undefined) (problems ??= []).push(...polluted)
    }
    if (op.hasHeaderParams) {
      const repeated = repeatedHeaders(op, request.raw.rawHeaders)
      if (repeated !== undefined) (problems ??= []).push(...repeated)
    }
    if (!validate(data)) (problems ??= []).push(...describe(validate.errors, '', 'readOnly'))
    return problems
  }

  function makeHooks (policy: RoutePolicy): { onRequest: onRequestHookHandler, preValidation: preValidationHookHandler, onSend: onSendHookHandler } {
    function contractOnRequest (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
      const contract = policy.contract as Contract
      const url = request.raw.url ?? request.url
      const qIndex = url.indexOf('?')
      const path = qIndex === -1 ? url : url.slice(0, qIndex)
      let upstreamPath = path
      if (policy.strip !== '' && path.startsWith(policy.strip)) upstreamPath = path.slice(policy.strip.length)
      if (policy.add !== '') upstreamPath = policy.add + upstreamPath
      if (upstreamPath.charCodeAt(0) !== 47) upstreamPath = '/' + upstreamPath
      const m = contract.match(upstreamPath, request.method)
      const r = request as WithMatched
      try {
        if (m.kind === 'unknown' || m.kind === 'method') {
          r[kMatched] = null
          if (!policy.refuseUnknown) {
            publish(policy, '(unknown)', 'shadow', false)
            request.log.debug({ contract: { kind: 'shadow' } }, 'operation not in the API contract (passed)')
            done()
            return
          }
          if (m.kind === 'method') {
            if (policy.block) reply.header('allow', m.allow)
            judge(request, policy, undefined, 'method', [`${request.method}: not declared`], () => new ContractMethodNotAllowedError())
          } else {
            judge(request, policy, undefined, 'unknown-operation', ['path: not declared'], () => new ContractUnknownOperationError())
          }
          // Detect mode: an operation the document lacks is a shadow endpoint.
          publish(policy, '(unknown)', 'shadow', false)
          done()
          return
        }
        const op = m.op
        r[kMatched] = op
        const security = securityMet(op, request)
        if (security !== 'ok') {
          judge(request, policy, op, 'security', [`security: ${security}`], () => security === 'unauthenticated' ? new ContractUnauthorizedError() : new ContractForbiddenError())
        }
        const query = qIndex === -1 ? '' : url.slice(qIndex + 1)
        if (op.validateParams !== undefined || (query !== '' && !op.declaresMethodParam)) {
          const key = op.urlParamsOnly && upstreamPath.length + query.length <= URL_VERDICT_MAX_CHARS ? `${policy.id} ${request.method} ${upstreamPath}?${query}` : undefined
          if (key === undefined || !urlVerdicts.has(key)) {
            const problems = checkParams(request, op, m.pathParams, query)
            if (problems !== undefined) judge(request, policy, op, 'params', problems, () => new ContractViolationError(problems))
            else if (key !== undefined) urlVerdicts.add(key)
          }
        }
      } catch (err) {
        done(err as Error)
        return
      }
      done()
    }

    function contractBody (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
      const op = (request as WithMatched)[kMatched]
      if (op === undefined || op === null) {
        done()
        return
      }
      let pending: Promise<void> | undefined
      try {
        pending = checkBody(request, op)
      } catch (err) {
        done(err as Error)
        return
      }
      // Only multipart bodies are read asynchronously (busboy is a stream).
      if (pending === undefined) done()
      else pending.then(() => { done() }, (err: unknown) => { done(err as Error) })
    }

    /** Throws in block mode when the body breaks the contract; a promise for multipart bodies. */
    function checkBody (request: FastifyRequest, op: Operation): Promise<void> | undefined {
      const body = request.body
      const present = Buffer.isBuffer(body) ? body.length > 0 : body !== undefined && body !== null
      const spec = op.body
      if (!present) {
        if (spec?.required === true) judge(request, policy, op, 'body', ['/body: required'], () => new ContractViolationError(['/body: required']))
        return undefined
      }
      const type = mediaTypeOf(request)
      const check = spec === undefined || type === undefined ? undefined : findMedia(spec.media, type)
      if (check === undefined) {
        judge(request, policy, op, 'media-type', [`content-type: ${spec === undefined ? 'no body declared' : 'not declared'}`], () => new UnsupportedMediaTypeError())
        return undefined
      }
      if (check.kind === 'xml') {
        // Declared and accepted; Ajv validates JSON values, not XML documents.
        publish(policy, op.label, 'body-unvalidated', false)
        return undefined
      }
      if (check.validate === undefined) return undefined
      if (request.headers['content-encoding'] !== undefined && request.headers['content-encoding'] !== 'identity') {
        // Coded bodies are not decoded here: refused in block mode, passed unvalidated in detect mode.
        judge(request, policy, op, 'media-type', ['content-encoding: not validated'], () => new UnsupportedMediaTypeError())
        return undefined
      }
      const validate = check.validate
      if (check.kind === 'multipart' && check.multipart !== undefined && Buffer.isBuffer(body)) {
        const contentType = request.headers['content-type'] as string
        const spec = check.multipart
        return readMultipart(body, contentType, spec).then(({ data, problems, json }) => {
          const all = new Set(problems)
          // JSON parts first, as JSON bodies are (no type coercion); the whole then coerces text parts.
          for (const [name, value] of json) {
            const strict = spec.json.get(name)
            if (strict !== undefined && !strict(value)) for (const line of describe(strict.errors, `/body/${escapePointer(name)}`, 'readOnly')) all.add(line)
          }
          if (data !== undefined && !validate(data)) for (const line of describe(validate.errors, '/body', 'readOnly')) all.add(line)
          if (data !== null && typeof data === 'object' && check.declaresMethodField !== true && hasMethodField(data)) all.add(`/body/${METHOD_FIELD}: method-override`)
          if (all.size > 0) {
            const shown = [...all].slice(0, MAX_VIOLATIONS)
            judge(request, policy, op, 'body', shown, () => new ContractViolationError(shown))
          }
        })
      }
      // JSON is UTF-8 (RFC 8259); a form may be US-ASCII or ISO-8859-1. Any other charset is not
      // guessed: the backend could read other characters, and another structure, than checked here.
      const decoding = check.kind === 'json' || check.kind === 'form' ? contentTypeDecoding(request.headers['content-type'] as string, check.kind === 'json') : 'utf8'
      if (decoding === undefined) {
        judge(request, policy, op, 'media-type', ['content-type: charset'], () => new UnsupportedMediaTypeError())
        return undefined
      }
      // A JSON body the inspection plugin already parsed from these bytes is not parsed again.
      const known = check.kind === 'json' && Buffer.isBuffer(body) ? rememberedJsonBody(body) : undefined
      const text = known !== undefined ? undefined : Buffer.isBuffer(body) ? body.toString(decoding) : typeof body === 'string' ? body : undefined
      let data: unknown
      if (known !== undefined) {
        data = known.value
      } else if (text === undefined) {
        data = body
      } else if (check.kind === 'json') {
        try {
          data = sjson.parse(text, null, { protoAction: 'error', constructorAction: 'error' })
        } catch {
          judge(request, policy, op, 'body', ['/body: json'], () => new ContractViolationError(['/body: json']))
          return undefined
        }
        // A key written twice: the backend's parser may read the other one (see lib/json-keys.ts).
        if (hasDuplicateKeys(text, data)) {
          judge(request, policy, op, 'body', ['/body: duplicate-key'], () => new ContractViolationError(['/body: duplicate-key']))
          return undefined
        }
      } else if (check.kind === 'form') {
        data = formObject(text)
      } else {
        // A host app's parser handed a multipart body over as text: not read here.
        publish(policy, op.label, 'body-unvalidated', false)
        return undefined
      }
      const valid = validate(data) as boolean
      const override = check.declaresMethodField !== true && data !== null && typeof data === 'object' && !Array.isArray(data) && hasMethodField(data)
      if (!valid || override) {
        const problems = valid ? [] : describe(validate.errors, '/body', 'readOnly')
        if (override) problems.push(`/body/${METHOD_FIELD}: method-override`)
        judge(request, policy, op, 'body', problems, () => new ContractViolationError(problems))
      }
      return undefined
    }

    function contractResponse (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void): void {
      const op = (request as WithMatched)[kMatched]
      // Only upstream answers: the gateway's own (strings) and unmatched operations are not judged.
      if (op === undefined || op === null || typeof payload === 'string' || payload === null || payload === undefined) {
        done(null, payload)
        return
      }
      const status = reply.statusCode
      const spec = op.responses.get(String(status)) ?? op.responses.get(`${String(status)[0] ?? ''}XX`) ?? op.responses.get('DEFAULT')
      let kind: string | undefined
      let problems: string[] = []
      if (spec === undefined) {
        kind = 'response-status'
        problems = [`status: ${status} not declared`]
      } else if (spec.size > 0) {
        const ct = reply.getHeader('content-type')
        const type = typeof ct === 'string' ? ct.split(';')[0]?.trim().toLowerCase() ?? '' : ''
        const check = findMedia(spec, type)
        if (check === undefined) {
          kind = 'response-body'
          problems = ['content-type: not declared']
        } else if (check.kind === 'json' && responseValidator(request, check) !== undefined) {
          const validate = responseValidator(request, check) as ValidateFunction
          const coded = reply.getHeader('content-encoding')
          if (!Buffer.isBuffer(payload) || payload.length > MAX_RESPONSE_VALIDATION_BYTES || (coded !== undefined && coded !== 'identity')) {
            publish(policy, op.label, 'response-unvalidated', false)
          } else {
            let data: unknown
            try {
              data = sjson.parse(payload.toString('utf8'), null, { protoAction: 'ignore', constructorAction: 'ignore' })
            } catch {
              data = Symbol('invalid')
            }
            if (typeof data === 'symbol') {
              kind = 'response-body'
              problems = ['/body: json']
            } else if (!validate(data)) {
              kind = 'response-body'
              problems = describe(validate.errors, '/body', 'writeOnly')
            }
          }
        }
      }
      if (kind === undefined) {
        done(null, payload)
        return
      }
      const blocked = policy.responses === 'block'
      publish(policy, op.label, kind, blocked)
      request.log.debug({ contract: { operation: op.label, kind, violations: problems, status } }, blocked ? 'response refused by the API contract' : 'response breaks the API contract (detect)')
      if (!blocked) {
        done(null, payload)
        return
      }
      if (typeof (payload as Readable).destroy === 'function' && !Buffer.isBuffer(payload)) (payload as Readable).destroy()
      replaceWithBadGateway(request, reply)
      const err = new ContractResponseError()
      done(null, JSON.stringify({ statusCode: err.statusCode, code: err.code, error: 'Bad Gateway', message: err.message }))
    }

    return { onRequest: contractOnRequest, preValidation: contractBody, onSend: contractResponse }
  }

  fastify.addHook('onRoute', function openApiOnRoute (routeOptions) {
    const config = routeOptions.config
    const raw: unknown = config?.openapi
    if (raw === undefined || raw === false) return
    const where = routeName(routeOptions)
    const problems = [...Value.Errors(OpenApiRouteConfigSchema, raw)].map((e) => `config.openapi${e.path.replaceAll('/', '.')}: ${e.message}`)
    if (problems.length > 0) throw new ConfigError(where, problems)
    const options = raw as OpenApiPolicy
    const mapping = config?.openapiPaths
    const mode = options.mode ?? 'block'
    const policy: RoutePolicy = {
      id: routes++,
      block: mode === 'block',
      mode,
      responses: options.responses ?? 'off',
      refuseUnknown: (options.unknownOperations ?? 'refuse') === 'refuse',
      strip: mapping?.strip ?? '',
      add: mapping?.add ?? '',
      label: (config as { proxy?: { prefix?: string } } | undefined)?.proxy?.prefix ?? routeOptions.url ?? '',
      contract: undefined
    }
    const file = isAbsolute(options.spec) ? options.spec : resolve(options.spec)
    loading.push(contractFor(file).then((contract) => { policy.contract = contract }, (err: unknown) => {
      const e = err instanceof ContractLoadError ? err : new ContractLoadError(file, '', (err as Error).message)
      throw new ConfigError(where, [`config.openapi.spec: ${e.file}${e.pointer === '' ? '' : `#${e.pointer}`}: ${e.reason}`])
    }))
    const hooks = makeHooks(policy)
    routeOptions.onRequest = appendHook(routeOptions.onRequest, hooks.onRequest)
    routeOptions.preValidation = appendHook(routeOptions.preValidation, hooks.preValidation)
    if (policy.responses !== 'off') routeOptions.onSend = appendHook(routeOptions.onSend, hooks.onSend)
  })
}

/** Headers the gateway itself sets, kept on a replaced response; the upstream's go. */
const OWN_HEADERS = /^(x-request-id|vary|access-control-|ratelimit|x-ratelimit|retry-after|traceparent|tracestate)/

function replaceWithBadGateway (request: FastifyRequest, reply: FastifyReply): void {
  const own = request.server.hasDecorator('portcullisSecurityHeaders') ? (request.server as unknown as { portcullisSecurityHeaders: Readonly<Record<string, string>> }).portcullisSecurityHeaders : {}
  for (const name of Object.keys(reply.getHeaders())) {
    if (!OWN_HEADERS.test(name) && !(name in own)) reply.removeHeader(name)
  }
  reply.headers(own)
  reply.code(502).header('content-type', 'application/json; charset=utf-8').header('cache-control', 'no-store')
}

/**
 * API contract enforcement. Register before any route (its `onRoute` hook must see them), after
 * the inspection plugin: `app.register(openApiPlugin)`.
 */
export const openApiPlugin = fp(gatewayOpenApi, { name: 'portcullis-openapi', fastify: '5.x', dependencies: [] })
export default openApiPlugin
