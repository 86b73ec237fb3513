// Example upstream: an echo service. In development it points at the built-in demo upstream;
// in production ECHO_UPSTREAM_URL is required (one URL, or several comma separated).
import { defineRoute, upstreamFromEnv } from 'portcullis'

export default defineRoute({
  prefix: '/echo',
  upstream: upstreamFromEnv('ECHO_UPSTREAM_URL'),
  timeout: { connectMs: 2000, headersMs: 10_000, bodyIdleMs: 30_000 },
  rateLimit: { max: 100, timeWindow: '1 minute' },
  inspect: { mode: 'block', body: true }
})
