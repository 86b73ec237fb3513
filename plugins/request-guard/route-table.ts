/**
 * The gateway's routes as a lenient backend reads them: a segment tree keyed by the read form of
 * each static segment (canonical.ts), built from every route Fastify registers after the request
 * guard (onRoute), so `defineRoute()` prefixes and an embedding host's own routes alike.
 *
 * A route's identity is its URL pattern without a trailing `/` or `/*` and with parameter names
 * blanked: `/inv` and `/inv/*` (one prefix) are one route, `/inv/admin` another. The request guard
 * refuses a request when the route its literal path took and a route its reading falls under differ.
 * Matching follows find-my-way's order (static, then parameter, then wildcard, with backtracking).
 */
import { ConfigError } from '../../lib/errors.js'
import { AMBIGUOUS, readPath, readPatternSegment, shortNameBase, shortNameStem } from './canonical.js'

interface Slot {
  readonly id: string
  readonly methods: Set<string>
}

interface TreeNode {
  readonly children: Map<string, TreeNode>
  param: TreeNode | undefined
  exact: Slot | undefined
  wild: Slot | undefined
}

function treeNode (): TreeNode {
  return { children: new Map(), param: undefined, exact: undefined, wild: undefined }
}

/**
 * Characters of a path that some backend rewrites before matching: letters it folds, escapes it
 * decodes, `;` parameters, `+`, `~` short names, `:` streams, trailing dots and a trailing `/`.
 */
const NEEDS_READING = /[A-Z%;+~:]|\.(?:\/|$)|.\/$/

/** The identity of a route pattern: `/a/:id/*` and `/a/:x/` are both `/a/:`. */
export function routeId (url: string): string {
  let id = url.replace(/::/g, '\uE000').replace(/:[^/]*/g, ':').replace(/\uE000/g, '::')
  if (id.endsWith('*')) id = id.slice(0, -1)
  if (id.endsWith('/')) id = id.slice(0, -1)
  return id
}

export class RouteTable {
  private readonly root = treeNode()
  /** Registered URL pattern -> route identity. */
  private readonly ids = new Map<string, string>()
  /** Read forms of segments that end a route exactly (Spring's suffix match can land there). */
  private readonly stems = new Set<string>()
  /** A route pattern is not spelled in its read form, so any path may read as it. */
  private checkAll = false

  /** Adds a Fastify route; throws GW_CONFIG_INVALID when it reads as another route's path. */
  add (method: string | readonly string[], url: string): void {
    const methods = typeof method === 'string' ? [method] : method
    const id = routeId(url)
    this.ids.set(url, id)
    const parts = url.split('/').slice(1)
    let node = this.root
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i] as string
      const last = i === parts.length - 1
      if (part === '') {
        if (last) break
        continue
      }
      if (part.includes('*')) {
        node.wild = this.slot(node.wild, id, methods)
        return
      }
      if (/(?:^|[^:]):(?!:)/.test(part)) {
        node.param ??= treeNode()
        node = node.param
        continue
      }
      const literal = part.replace(/::/g, ':')
      const key = readPatternSegment(literal)
      if (key !== literal) this.checkAll = true
      let child = node.children.get(key)
      if (child === undefined) {
        child = treeNode()
        node.children.set(key, child)
      }
      node = child
      if (last) this.stems.add(key)
    }
    node.exact = this.slot(node.exact, id, methods)
  }

  private slot (existing: Slot | undefined, id: string, methods: readonly string[]): Slot {
    if (existing === undefined) return { id, methods: new Set(methods) }
    if (existing.id !== id) {
      throw new ConfigError(`route ${id || '/'}`, [
        `path ${id || '/'} and path ${existing.id || '/'} are one path to backends that fold letter case, trailing dots or spaces, ` +
        'or Unicode forms (IIS, Spring, Express); rename one (or set PATH_CHECK=literal if every backend matches paths literally)'
      ])
    }
    for (const m of methods) existing.methods.add(m)
    return existing
  }

  /** The identity of the route Fastify matched (its URL pattern), or undefined for a route registered before the table. */
  idOf (url: string): string | undefined {
    return this.ids.get(url)
  }

  /** Cheap pre-test: whether `path` could read as anything but itself. */
  needsReading (path: string): boolean {
    if (this.checkAll || NEEDS_READING.test(path)) return true
    const dot = path.lastIndexOf('.')
    if (dot === -1) return false
    const slash = path.lastIndexOf('/')
    if (dot < slash) return false
    const first = path.indexOf('.', slash)
    return this.stems.has(path.slice(slash + 1, first))
  }

  /**
   * Whether `path` (no query), as a lenient backend reads it, falls under a route other than
   * `literal` (the route Fastify matched; null when none did) for `method`.
   */
  readsAsOtherRoute (method: string, path: string, literal: string | null): boolean {
    const segments = readPath(path)
    if (segments === AMBIGUOUS) return true
    const found: string[] = []
    if (!this.walk(this.root, segments, 0, method, undefined, found)) found.push('\u0000none')
    for (const id of found) if (id !== (literal ?? '\u0000none')) return true
    // Spring's suffix pattern match: `admin.json` (any extension) is served by a mapping `admin`.
    const last = segments[segments.length - 1]
    const dot = last === undefined ? -1 : last.indexOf('.')
    if (dot > 0) {
      const suffixed: string[] = []
      const stemmed = segments.slice(0, -1)
      stemmed.push((last as string).slice(0, dot))
      this.walk(this.root, stemmed, 0, method, last, suffixed)
      for (const id of suffixed) if (id !== literal) return true
    }
    return false
  }

  /**
   * find-my-way's order over read segments. `full` is set for a suffix reading: the last segment
   * is the stem of `full`, matched statically and only where a route ends exactly, and only when
   * no route has `full` itself (Spring prefers the exact mapping).
   */
  private walk (node: TreeNode, segments: readonly string[], i: number, method: string, full: string | undefined, found: string[]): boolean {
    if (i === segments.length) {
      if (node.exact?.methods.has(method) === true) {
        found.push(node.exact.id)
        return true
      }
      if (full === undefined && node.wild?.methods.has(method) === true) {
        found.push(node.wild.id)
        return true
      }
      return false
    }
    const segment = segments[i] as string
    const child = node.children.get(segment)
    if (full !== undefined && i === segments.length - 1) {
      return child !== undefined && !node.children.has(full) && this.walk(child, segments, i + 1, method, full, found)
    }
    let matched = child !== undefined && this.walk(child, segments, i + 1, method, full, found)
    // An 8.3 short name reads as every long name it can abbreviate. A stem that only begins with
    // a route's name counts too: no client sends short names, so reading them broadly costs nothing.
    const stem = segment.includes('~') ? shortNameStem(segment) : undefined
    if (stem !== undefined) {
      for (const [key, other] of node.children) {
        if (key === segment) continue
        const base = shortNameBase(key)
        if (base.startsWith(stem) || stem.startsWith(base)) matched = this.walk(other, segments, i + 1, method, full, found) || matched
      }
    }
    if (matched) return true
    if (node.param !== undefined && this.walk(node.param, segments, i + 1, method, full, found)) return true
    if (full === undefined && node.wild?.methods.has(method) === true) {
      found.push(node.wild.id)
      return true
    }
    return false
  }
}
