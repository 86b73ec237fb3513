/**
 * The reference under docs/reference/ is generated from the schemas and the error classes
 * (scripts/gen-docs.mjs). This runs the generator's check on the TypeScript sources: it fails when
 * a committed file differs from what the sources generate (`.env.example` included), when a
 * schema field or an error class has no description, or when `.env.example` misses a variable.
 */
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { generate, missingFromEnvExample, REGENERATE, ROOT, staleFiles } from '../scripts/gen-docs.mjs'

const load = async (file: string): Promise<Record<string, unknown>> => await import(pathToFileURL(join(ROOT, file)).href) as Record<string, unknown>

t.test('docs/reference and .env.example are what the schemas and error classes generate', async (t) => {
  const { files, problems } = await generate(load)
  t.strictSame([...files.keys()].sort(), ['.env.example', 'docs/reference/chain.md', 'docs/reference/environment.md', 'docs/reference/errors.md', 'docs/reference/route-options.md'])
  t.strictSame(problems, [], 'every option, variable and error is described and .env.example lists every variable')
  const stale = staleFiles(files)
  t.strictSame(stale, [], stale.length === 0 ? 'up to date' : `stale: ${stale.join(', ')}; run \`${REGENERATE}\` and commit the result`)
})

t.test('the reference names every variable, option and code it is generated from', async (t) => {
  const { files } = await generate(load)
  const { EnvSchema } = await import('../src/config.js')
  const environment = files.get('docs/reference/environment.md') ?? ''
  for (const name of Object.keys(EnvSchema.properties)) t.match(environment, `| \`${name}\` |`, name)
  const routeOptions = files.get('docs/reference/route-options.md') ?? ''
  for (const option of ['prefix', 'upstream', 'auth', 'auth.relation', 'rateLimit.keyBy', 'inspect.body', 'cors', 'cors.origins', 'timeout.bodyIdleMs']) {
    t.match(routeOptions, `| \`${option}\` |`, option)
  }
  const errors = files.get('docs/reference/errors.md') ?? ''
  for (const [code, status] of [['GW_AUTH_UNAUTHORIZED', 401], ['GW_RATE_LIMITED', 429], ['GW_UPSTREAM_TIMEOUT', 504], ['GW_REQUEST_TIMEOUT', 408]] as const) {
    t.match(errors, `| \`${code}\` | ${status} |`, code)
  }
  const chain = files.get('docs/reference/chain.md') ?? ''
  for (const [i, name] of [[1, 'portcullis-observability'], [10, 'portcullis-auth'], [15, 'portcullis-proxy-scope']] as const) {
    t.match(chain, new RegExp(`^\\| ${i} \\| \`\\w+\` \\| \`${name}\` \\|`, 'm'), `${name} is number ${i}`)
  }
})

t.test('.env.example lists every variable with its default and sets no value but the empty credentials', async (t) => {
  const { files } = await generate(load)
  const example = files.get('.env.example') ?? ''
  const { EnvSchema, EMPTY_MEANS_UNSET } = await import('../src/config.js')
  const set = [...example.matchAll(/^([A-Z][A-Z0-9_]*)=(.*)$/gm)].map((m) => [m[1], m[2]])
  t.strictSame(set, EMPTY_MEANS_UNSET.map((name) => [name, '']), 'only the credentials `npm run secrets` fills are uncommented, and they are empty')
  for (const [name, schema] of Object.entries(EnvSchema.properties)) {
    if (EMPTY_MEANS_UNSET.includes(name)) continue
    const def = (schema as { default?: unknown }).default
    t.match(example, `\n# ${name}=${def === undefined ? '' : String(def)}\n`, `${name} with its default`)
  }
})

t.test('a variable missing from .env.example is reported', async (t) => {
  const schema = { properties: { PORT: {}, HOST: {}, REDIS_URL: {} } }
  t.strictSame(missingFromEnvExample(schema, '# PORT=8080\nHOST=0.0.0.0\n# REDIS_URLX=\n'), ['REDIS_URL'])
})

t.test('a stale committed file is named', async (t) => {
  const dir = t.testdir({ docs: { reference: { 'a.md': 'old\n' } } })
  t.strictSame(staleFiles(new Map([['docs/reference/a.md', 'new\n'], ['docs/reference/b.md', 'x\n']]), dir), ['docs/reference/a.md', 'docs/reference/b.md'])
  t.strictSame(staleFiles(new Map([['docs/reference/a.md', 'old\n']]), dir), [])
})
