/**
 * Rules of the proxy plugin's options shared with the environment (src/config-schema.ts): each
 * is written once, here, and used by both `ProxyPluginOptionsSchema` and the variable that feeds
 * the option. No imports beyond constants, so the configuration can read them without loading
 * the proxy.
 */

/** Request body bytes, proxied bodies included (BODY_LIMIT, `bodyLimit`). */
export const BODY_LIMIT = Object.freeze({ minimum: 1, maximum: 1024 * 1024 * 1024, default: 1024 * 1024 })

/** Bytes of one upstream response read whole before it is sent (RESPONSE_BUFFER_BYTES, `responseBufferBytes`). */
export const RESPONSE_BUFFER_BYTES = Object.freeze({ minimum: 0, maximum: 8 * 1024 * 1024, default: 16 * 1024 })

/**
 * How long a client may read nothing of a streamed response, ms (SEND_TIMEOUT_MS,
 * `sendTimeoutMs`). The option also takes 0 (never); the variable starts at a second.
 */
export const SEND_TIMEOUT_MS = Object.freeze({ maximum: 3_600_000, default: 60_000 })
