/**
 * A host Fastify service that embeds Portcullis: its own error handler and routes, with gateway
 * policies on one local route and one proxied prefix. It logs as the gateway does
 * (`hostServerOptions`: secrets redacted, one access line per request) and drains on SIGTERM.
 *
 * Env: PORT (default 3000, 0 = any free port), HOST_APP_API_KEYS (`consumer:key`, comma
 * separated), HOST_APP_UPSTREAM (URL proxied under /upstream), LOG_LEVEL (default info).
 */
import { STATUS_CODES } from 'node:http'
import Fastify, { type FastifyError } from 'fastify'
import {
  observabilityPlugin,
  requestGuardPlugin,
  authPlugin,
  routeRateLimitPlugin,
  inspectPlugin,
  proxyPlugin,
  proxyScopePlugin,
  defineRoute,
  hostServerOptions,
  routePolicy,
  type ApiKeyEntry
} from 'portcullis'

function parseKeys (text: string): ApiKeyEntry[] {
  return text.split(',').filter((pair) => pair.trim() !== '').map((pair) => {
    const i = pair.indexOf(':')
    return { consumer: pair.slice(0, i).trim(), key: pair.slice(i + 1).trim() }
  })
}

// The gateway's logger options (credential headers redacted, secret-looking query values
// masked), its request ids, and no Fastify request lines: the observability plugin writes one
// access line per request.
const app = Fastify({ ...hostServerOptions({ logLevel: process.env.LOG_LEVEL ?? 'info' }) })

// The host's own error handler: gateway rejections carry `statusCode` and a `GW_*` code.
app.setErrorHandler(async (err: FastifyError, request, reply) => {
  const statusCode = err.statusCode ?? 500
  if (statusCode >= 500) request.log.error({ err }, 'request failed')
  return await reply.code(statusCode).send({
    statusCode,
    code: err.code ?? 'HOST_ERROR',
    error: STATUS_CODES[statusCode] ?? 'Error',
    message: statusCode >= 500 ? 'Internal error' : err.message
  })
})

await app.register(observabilityPlugin, { healthRoutes: false })
await app.register(requestGuardPlugin)
await app.register(authPlugin, { apiKeys: parseKeys(process.env.HOST_APP_API_KEYS ?? '') })
await app.register(routeRateLimitPlugin)
await app.register(inspectPlugin)
await app.register(proxyPlugin)
// One context for every proxied prefix registered below on `app` (flat cost with many prefixes).
await app.register(proxyScopePlugin)

// A plain host route: no config, so the gateway plugins leave it alone.
app.get('/hello', async () => ({ hello: 'world' }))

// A host route guarded by the gateway: API key, 3 requests a minute per consumer, inspection.
app.get('/me', {
  config: routePolicy({
    auth: { strategies: ['apiKey'] },
    rateLimit: { max: 3, timeWindow: '1 minute' },
    inspect: { mode: 'block' }
  })
}, async (request) => ({ consumer: request.consumer?.id ?? null }))

// A proxied prefix, authenticated by API key; x-api-key never reaches the upstream.
const upstream = process.env.HOST_APP_UPSTREAM
if (upstream !== undefined && upstream !== '') {
  await app.register(defineRoute({
    prefix: '/upstream',
    upstream,
    auth: { strategies: ['apiKey'] },
    rateLimit: { max: 100, timeWindow: '1 minute' }
  }))
}

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
process.stdout.write(`listening ${new URL(address).port}\n`)

// Graceful shutdown: the gateway's /readyz (when served) turns 503 and responses carry
// `connection: close`; app.close() stops accepting, closes idle connections, waits for in-flight
// requests and closes the plugins' resources (Redis, upstream pools).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.portcullisState.draining = true
    const deadline = setTimeout(() => { process.exit(1) }, 10_000)
    deadline.unref()
    app.close().then(() => process.exit(0), () => process.exit(1))
  })
}
