/**
 * What the plugins that attach route-level hooks in `onRoute` share: a route's hooks of one phase
 * as a list, a new list with a hook added (never the caller's array: the HEAD twin of a GET route
 * shares the original options), and the route's name in startup errors.
 */
import type { RouteOptions } from 'fastify'

/** A route's hooks of one phase (absent, one, or several) as a list. */
export function hookList<T> (existing: T | readonly T[] | undefined): readonly T[] {
  if (existing === undefined) return []
  return Array.isArray(existing) ? existing as readonly T[] : [existing as T]
}

/** A new list: the route's hooks of one phase, then `hook`. */
export function appendHook<T> (existing: T | readonly T[] | undefined, hook: T): T[] {
  return [...hookList(existing), hook]
}

/** A new list: `hook`, then the route's hooks of one phase. */
export function prependHook<T> (existing: T | readonly T[] | undefined, hook: T): T[] {
  return [hook, ...hookList(existing)]
}

/** `route GET,HEAD /orders/*`: how startup errors name a route. */
export function routeName (routeOptions: Pick<RouteOptions, 'method' | 'url'>): string {
  const method = Array.isArray(routeOptions.method) ? routeOptions.method.join(',') : routeOptions.method
  return `route ${String(method)} ${routeOptions.url ?? ''}`
}
