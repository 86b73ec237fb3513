// Example public upstream: no authentication, a tighter per-IP limit, URL inspection only.
import { defineRoute, upstreamFromEnv } from 'portcullis'

export default defineRoute({
  prefix: '/public',
  upstream: upstreamFromEnv('PUBLIC_UPSTREAM_URL'),
  auth: false,
  rateLimit: { max: 30, timeWindow: '1 minute', keyBy: 'ip' },
  inspect: { mode: 'block' }
})
