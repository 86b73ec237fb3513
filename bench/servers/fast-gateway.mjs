// A comparison gateway: fast-gateway (restana + fast-proxy-lite) routing /api to the upstream.
//
//   PORT, UPSTREAM        listen port, upstream base URL
//   POLICIES=jwt-rl       add, as route middlewares, the policies of Portcullis scenario (2):
//                         JWT_SECRET   HS256 secret: `Authorization: Bearer <jwt>` verified with
//                                      fast-jwt (exp/nbf checked; missing or invalid: 401), the
//                                      verified token remembered like Portcullis does (LRU 1000,
//                                      10 s TTL)
//                         RATE_LIMIT_MAX / RATE_LIMIT_WINDOW_MS   an in-memory fixed-window limit
//                                      per consumer (JWT `sub`); over it: 429 with Retry-After
import gateway from 'fast-gateway'
import { createVerifier } from 'fast-jwt'

const policies = process.env.POLICIES ?? 'none'
if (policies !== 'none' && policies !== 'jwt-rl') throw new Error(`POLICIES must be none or jwt-rl, not ${policies}`)

function problem (res, status, code, message, headers = {}) {
  const body = JSON.stringify({ statusCode: status, code, error: message })
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers })
  res.end(body)
}

function jwtAuth (secret) {
  const verify = createVerifier({ key: secret, algorithms: ['HS256'], cache: 1000, cacheTTL: 10_000 })
  return (req, res, next) => {
    const h = req.headers.authorization
    if (typeof h !== 'string' || h.length < 8 || h.slice(0, 7).toLowerCase() !== 'bearer ') {
      return problem(res, 401, 'GW_AUTH_REQUIRED', 'Unauthorized', { 'www-authenticate': 'Bearer' })
    }
    let payload
    try {
      payload = verify(h.slice(7).trim())
    } catch {
      return problem(res, 401, 'GW_AUTH_INVALID', 'Unauthorized', { 'www-authenticate': 'Bearer error="invalid_token"' })
    }
    if (typeof payload.sub !== 'string' || payload.sub === '') {
      return problem(res, 401, 'GW_AUTH_INVALID', 'Unauthorized', { 'www-authenticate': 'Bearer error="invalid_token"' })
    }
    req.consumer = payload.sub
    next()
  }
}

/** Fixed window per consumer, counters in a Map bounded like an LRU (oldest key dropped first). */
function rateLimit (max, windowMs, maxKeys = 5000) {
  const buckets = new Map()
  return (req, res, next) => {
    const now = Date.now()
    const key = req.consumer
    let b = buckets.get(key)
    if (b === undefined || b.reset <= now) {
      if (b !== undefined) buckets.delete(key)
      else if (buckets.size >= maxKeys) buckets.delete(buckets.keys().next().value)
      b = { count: 0, reset: now + windowMs }
      buckets.set(key, b)
    }
    if (++b.count > max) {
      return problem(res, 429, 'GW_RATE_LIMITED', 'Too Many Requests', { 'retry-after': String(Math.ceil((b.reset - now) / 1000)) })
    }
    next()
  }
}

const middlewares = policies === 'jwt-rl'
  ? [
      jwtAuth(process.env.JWT_SECRET ?? ''),
      rateLimit(Number(process.env.RATE_LIMIT_MAX ?? 100_000_000), Number(process.env.RATE_LIMIT_WINDOW_MS ?? 60_000))
    ]
  : []
if (policies === 'jwt-rl' && (process.env.JWT_SECRET ?? '') === '') throw new Error('JWT_SECRET is required with POLICIES=jwt-rl')

const server = gateway({
  enableServicesEndpoint: false,
  routes: [{ prefix: '/api', target: process.env.UPSTREAM, middlewares }]
})
await server.start(Number(process.env.PORT ?? 0), '127.0.0.1')
process.stdout.write(`listening ${server.getServer().address().port}\n`)
