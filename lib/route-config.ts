/**
 * Copies of route `config` objects that keep one V8 hidden class across routes.
 *
 * Fastify stores `{ ...routeOptions.config, url, method }` on every route. Once that copy site has
 * seen a few source classes, V8 gives each object literal that adds keys after a spread a hidden
 * class of its own, so with many routes every `request.routeOptions.config.x` read in a hook went
 * megamorphic (1,000 prefixes: 996 classes for 2,000 routes). A config built here starts from `{}`
 * and already names `url` and `method`, so Fastify's copy only overwrites them and every route
 * with the same keys shares one class (test/route-config.test.ts checks it with V8's own test).
 */
import type { FastifyContextConfig } from 'fastify'

type Config = FastifyContextConfig & Record<PropertyKey, unknown>

/**
 * A new config: `config`'s entries, then `extra`'s, with `url` and `method` present (Fastify
 * fills them after the `onRoute` hooks). The caller's object is left untouched.
 */
export function routeConfigWith<T extends object = FastifyContextConfig> (config: T | undefined, extra?: Record<PropertyKey, unknown>): T {
  const base = (config ?? {}) as Config
  return Object.assign({}, base, extra, { url: base.url, method: base.method }) as unknown as T
}
