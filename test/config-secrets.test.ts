/**
 * Production refuses every credential anyone can know: the demo ones, what `.env.example` ever
 * shipped, placeholders and values that are plainly not random; each refusal names the variable
 * and the command that generates real secrets, and never prints the secret. Random secrets load.
 * `npm run secrets` writes a `.env` that production accepts.
 */
import { randomBytes } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { DEMO_API_KEY, DEMO_JWT_SECRET, loadConfig } from 'portcullis'

const root = fileURLToPath(new URL('..', import.meta.url))
const PROD = { NODE_ENV: 'production' }

/** The `NAME=value` lines of a dotenv file, as docker compose's env_file reads them. */
function dotenv (text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line)
    if (m !== null) out[m[1] as string] = (m[2] as string).trim()
  }
  return out
}

function refusal (t: Test, env: Record<string, string>, variable: string, secret: string): void {
  const err = t.throws(() => loadConfig({ ...PROD, ...env }), { code: 'GW_CONFIG_INVALID' }, `${variable} refused`) as Error & { problems: string[] }
  const line = err.problems.find((p) => p.startsWith(`${variable}:`))
  t.ok(line, `a problem names ${variable}: ${err.message}`)
  t.match(line, /npm run secrets/, 'and says how to generate a real one')
  t.notOk(err.message.includes(secret), 'the refused secret is never printed')
}

const PLACEHOLDERS = [
  'change-me-to-a-random-secret-of-32-bytes-or-more',
  'CHANGEME_CHANGEME_CHANGEME_CHANGEME_1',
  'please-replace-me-with-a-real-secret-value',
  'your-secret-goes-here-at-least-32-bytes-long',
  'example-jwt-secret-for-the-gateway-0000000',
  'placeholder-placeholder-placeholder-00000',
  '<a random string of at least thirty-two bytes>',
  '{{ JWT_SECRET_FROM_VAULT_GOES_IN_HERE_PLEASE }}',
  'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  'todo: generate this before going live 2026',
  'TODO-generate-before-going-live-2026-please',
  'dummy_signing_key_for_local_testing_only_42',
  'insert-your-signing-key-for-production-here',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'abcabcabcabcabcabcabcabcabcabcabcabcabcabc',
  '0123456789abcdefghijklmnopqrstuvwxyz012345',
  'secret0000000000000000000000000000000000000'
]

t.test('the values .env.example shipped, and the demo ones, are refused in production with the variable named', async (t) => {
  refusal(t, { JWT_SECRET: 'change-me-to-a-random-secret-of-32-bytes-or-more' }, 'JWT_SECRET', 'change-me-to-a-random')
  refusal(t, { API_KEYS: 'billing:change-me-billing-key-0001,reports:change-me-reports-key-0002' }, 'API_KEYS', 'change-me-billing-key')
  refusal(t, { JWT_SECRET: DEMO_JWT_SECRET }, 'JWT_SECRET', DEMO_JWT_SECRET)
  refusal(t, { API_KEYS: `demo:${DEMO_API_KEY}` }, 'API_KEYS', DEMO_API_KEY)
  const both = t.throws(() => loadConfig({ ...PROD, JWT_SECRET: DEMO_JWT_SECRET, API_KEYS: `a:${DEMO_API_KEY},b:change-me-billing-key-0001` })) as Error & { problems: string[] }
  t.equal(both.problems.length, 3, 'every refused credential at once')
})

t.test('.env.example ships without working secrets: production started from it names the missing credentials', async (t) => {
  const example = dotenv(readFileSync(join(root, '.env.example'), 'utf8'))
  t.equal(example.JWT_SECRET, '', 'JWT_SECRET is empty')
  t.equal(example.API_KEYS, '', 'API_KEYS is empty')
  const err = t.throws(() => loadConfig({ ...example, ...PROD })) as Error & { problems: string[] }
  t.strictSame(err.problems, ['JWT_SECRET, JWT_PUBLIC_KEY, JWKS_URL or API_KEYS: production needs at least one credential source (these, INTROSPECTION_URL, FORWARD_AUTH_URL or TLS_CLIENT_CA_FILE); generate a JWT secret and an API key with: npm run secrets'])
  t.equal(loadConfig(example).auth.jwtSecret, DEMO_JWT_SECRET, 'in development the empty values mean the demo defaults')
})

t.test('placeholders and non-random values are refused in production, in JWT_SECRET, API_KEYS, API_KEYS_FILE and REDIS_URL', async (t) => {
  for (const value of PLACEHOLDERS) {
    refusal(t, { JWT_SECRET: value }, 'JWT_SECRET', value)
    refusal(t, { API_KEYS: `svc:${value}` }, 'API_KEYS', value)
  }
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-keys-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'keys')
  writeFileSync(file, `good:${randomBytes(24).toString('base64url')}\nbad:your-api-key-here-0001\n`)
  refusal(t, { API_KEYS_FILE: file }, 'API_KEYS_FILE', 'your-api-key-here')
  const err = t.throws(() => loadConfig({ ...PROD, API_KEYS: `svc:${randomBytes(24).toString('base64url')}`, REDIS_URL: 'redis://:change-me@redis:6379' })) as Error & { problems: string[] }
  t.match(err.problems, [/^REDIS_URL: its password looks like a placeholder/])
  t.notMatch(err.message, /change-me@/, 'the URL is never printed')
})

t.test('random secrets of every usual shape load in production', async (t) => {
  for (let i = 0; i < 1000; i++) {
    const bytes = randomBytes(32)
    const shapes = [bytes.toString('base64url'), bytes.toString('base64'), bytes.toString('hex'), bytes.toString('hex').slice(0, 32)]
    for (const secret of shapes) {
      const key = i % 2 === 0 ? randomBytes([8, 12, 24][i % 3] as number).toString('hex') : randomBytes([12, 18, 24][i % 3] as number).toString('base64')
      const c = loadConfig({ ...PROD, JWT_SECRET: secret, API_KEYS: `svc:${key}` })
      if (c.auth.jwtSecret !== secret) t.fail(`refused a random secret of ${secret.length} characters`)
    }
  }
  t.ok(loadConfig({ ...PROD, API_KEYS: 'svc:a-real-production-key-123456', JWT_SECRET: 'a-production-jwt-secret-0123456789abcdef' }), 'human-made but distinct values pass')
})

t.test('development keeps working with the demo defaults and accepts placeholders', async (t) => {
  t.equal(loadConfig({}).auth.jwtSecret, DEMO_JWT_SECRET)
  t.equal(loadConfig({ JWT_SECRET: 'change-me-to-a-random-secret-of-32-bytes-or-more' }).auth.jwtSecret, 'change-me-to-a-random-secret-of-32-bytes-or-more')
})

t.test('npm run secrets writes a .env from .env.example that production accepts, and never replaces a value', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-secrets-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  copyFileSync(join(root, '.env.example'), join(dir, '.env.example'))
  const run = (): string => {
    const r = spawnSync(process.execPath, [join(root, 'scripts/secrets.mjs')], { cwd: dir, encoding: 'utf8' })
    t.equal(r.status, 0, r.stderr)
    return r.stdout
  }
  t.equal(run(), 'created .env: generated JWT_SECRET and API_KEYS\n')
  const first = readFileSync(join(dir, '.env'), 'utf8')
  t.equal(statSync(join(dir, '.env')).mode & 0o777, 0o600, 'readable by its owner only')
  const env = dotenv(first)
  t.match(env.API_KEYS, /^app:[A-Za-z0-9_-]{32}$/)
  const c = loadConfig({ ...env, ...PROD })
  t.equal(c.auth.jwtSecret, env.JWT_SECRET)
  t.equal(c.auth.apiKeys.length, 1)
  t.ok(first.includes('# --- rate limits'), 'the rest of .env.example is kept')
  t.equal(run(), 'updated .env: nothing generated; kept the JWT_SECRET and API_KEYS already set\n')
  t.equal(readFileSync(join(dir, '.env'), 'utf8'), first, 'values already set are kept')
  const printed = spawnSync(process.execPath, [join(root, 'scripts/secrets.mjs'), '--print'], { cwd: dir, encoding: 'utf8' })
  t.match(printed.stdout, /^JWT_SECRET=[A-Za-z0-9_-]{43}\nAPI_KEYS=app:[A-Za-z0-9_-]{32}\n$/)
})
