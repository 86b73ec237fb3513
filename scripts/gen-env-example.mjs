/**
 * `.env.example` from the schema of the environment (EnvSchema and ENV_SECTIONS in
 * src/config-schema.ts), the upstream variables of the bundled routes and the variables of
 * docker-compose.yml. Called by scripts/gen-docs.mjs (`npm run docs` writes it, test/docs.test.ts
 * fails when the committed file is stale).
 *
 * Every variable is listed commented out with its default (`# PORT=8080`), or empty when it has
 * none, below its description; an example value, when the schema gives one, is on a line of its
 * own. The variables `npm run secrets` fills (EMPTY_MEANS_UNSET) are left uncommented and empty:
 * the file ships no credential, and production refuses to start without real ones.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const WIDTH = 100

/** `text` as `# ` comment lines of at most WIDTH characters (a `code span` is never split). */
function comment (text) {
  const lines = []
  let line = '#'
  for (const word of text.match(/`[^`]*`\S*|\S+/g) ?? []) {
    if (line.length + 1 + word.length > WIDTH && line !== '#') {
      lines.push(line)
      line = '#'
    }
    line += ` ${word}`
  }
  if (line !== '#') lines.push(line)
  return lines
}

function heading (title) {
  const start = `# --- ${title} `
  return start + '-'.repeat(Math.max(3, 80 - start.length))
}

/** Allowed values of a variable in a few words ('' when its description says it all). */
function allowed (schema) {
  if (Array.isArray(schema.anyOf) && schema.anyOf.every((s) => s.const !== undefined)) return `One of: ${schema.anyOf.map((s) => s.const).join(', ')}.`
  if (schema.type === 'integer' || schema.type === 'number') {
    if (schema.minimum !== undefined && schema.maximum !== undefined && schema.maximum < Number.MAX_SAFE_INTEGER) return `${schema.minimum} to ${schema.maximum}.`
    if (schema.minimum !== undefined) return `At least ${schema.minimum}.`
  }
  if (schema.type === 'boolean') return 'true or false.'
  return ''
}

function value (v) {
  return v === undefined ? '' : String(v)
}

/** The lines of one variable: its description, an example, then `# NAME=default`. */
function variableLines (name, schema, emptyMeansUnset) {
  const text = [schema.description ?? '', allowed(schema)].filter((s) => s !== '').join(' ')
  const lines = comment(text)
  const example = Array.isArray(schema.examples) ? schema.examples[0] : undefined
  if (example !== undefined) lines.push(`# Example: ${name}=${value(example)}`)
  lines.push(emptyMeansUnset.includes(name) ? `${name}=` : `# ${name}=${value(schema.default)}`)
  return lines
}

/** The variables route modules read through `upstreamFromEnv('NAME')`, with the file that reads each. */
export function routeVariables (root) {
  const dir = join(root, 'routes')
  const found = []
  for (const file of readdirSync(dir).filter((f) => /\.[cm]?[jt]s$/.test(f) && !f.endsWith('.d.ts')).sort()) {
    for (const m of readFileSync(join(dir, file), 'utf8').matchAll(/upstreamFromEnv\(\s*'([A-Z][A-Z0-9_]*)'/g)) {
      found.push({ name: m[1], file: `routes/${file}` })
    }
  }
  return found
}

/** The `${NAME:-default}` variables of docker-compose.yml. */
export function composeVariables (root) {
  const found = new Map()
  for (const m of readFileSync(join(root, 'docker-compose.yml'), 'utf8').matchAll(/\$\{([A-Z][A-Z0-9_]*)(?::?-([^}]*))?\}/g)) {
    if (!found.has(m[1])) found.set(m[1], m[2])
  }
  return [...found].map(([name, def]) => ({ name, default: def }))
}

/**
 * The text of `.env.example`. `sections` groups every property of `envSchema` exactly once;
 * a variable in no section or in two is reported in `problems`.
 */
export function envExample ({ envSchema, sections, emptyMeansUnset, routes, compose }, problems) {
  const names = Object.keys(envSchema.properties)
  const placed = sections.flatMap((s) => s.names)
  for (const name of names) {
    const n = placed.filter((p) => p === name).length
    if (n !== 1) problems.push(`src/config-schema.ts: ${name} is in ${n} sections of ENV_SECTIONS (one expected)`)
  }
  for (const name of placed) if (!names.includes(name)) problems.push(`src/config-schema.ts: ENV_SECTIONS names ${name}, which EnvSchema does not define`)
  const out = [
    '# Portcullis configuration: every variable the gateway reads, in one place.',
    '# Generated from the schema (src/config-schema.ts) by `npm run docs`; do not edit.',
    '# Copy to .env for docker compose (`npm run secrets` does it and fills in generated secrets),',
    '# or export them for `npm start`. A commented line shows the default (empty: unset).',
    '# With NODE_ENV=production there are no demo defaults: missing credentials or upstreams stop startup.',
    '# Every variable: docs/reference/environment.md.'
  ]
  for (const section of sections) {
    out.push('', heading(section.title))
    if (section.note !== undefined) out.push(...comment(section.note))
    for (const name of section.names) {
      const schema = envSchema.properties[name]
      if (schema !== undefined) out.push('', ...variableLines(name, schema, emptyMeansUnset))
    }
  }
  if (routes.length > 0) {
    out.push('', heading('upstreams of the bundled example routes (routes/)'))
    for (const r of routes) {
      out.push('', ...comment(`The upstream of ${r.file}: one URL or several, comma separated. Required in production; in development the built-in demo upstream.`), `# ${r.name}=`)
    }
  }
  if (compose.length > 0) {
    out.push('', heading('docker compose only (docker-compose.yml)'))
    for (const c of compose) out.push('', `# ${c.name}=${value(c.default)}`)
  }
  return out.join('\n') + '\n'
}
