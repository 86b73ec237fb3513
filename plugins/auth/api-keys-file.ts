/**
 * The text format of API keys (API_KEYS, API_KEYS_FILE, the plugin's `apiKeysFile`), one grammar
 * for all of them:
 *
 *   # comment
 *   consumer:key
 *   consumer:key scopes=orders:read,orders:write expires=2027-01-31T00:00:00Z
 *   a:key1,b:key2                      (several pairs on a line: the older form, no attributes)
 *
 * Lines end at a line break; attributes follow the pair after white space, each once, as
 * `name=value`: `scopes` (comma-separated RFC 6749 scope tokens) and `expires` (RFC 3339 with a
 * time zone). A consumer may have several keys (rotation); a key belongs to one entry only.
 * Problems name the line and what is wrong, never a key: neither the key, nor text that could be
 * part of one (a line without `consumer:`, an unknown attribute, a bad value) is echoed.
 */
import { createHash } from 'node:crypto'
import { API_KEY, CONSUMER_PATTERN, MAX_KEY_SCOPES, SCOPE_TOKEN_PATTERN, TIMESTAMP_PATTERN, type ApiKeyEntrySpec } from './schema.js'

const CONSUMER = new RegExp(CONSUMER_PATTERN)
const KEY = new RegExp(API_KEY.pattern)
const SCOPE = new RegExp(SCOPE_TOKEN_PATTERN)
const TIMESTAMP = new RegExp(TIMESTAMP_PATTERN)
/** An attribute starts at the first white-space-preceded `name=`. */
const ATTRIBUTE_START = /[ \t]+[a-z][a-z_-]*=/
const ATTRIBUTE = /^([a-z][a-z_-]*)=(.*)$/s

/** One problem of a key text; `entry` counts the pairs (1-based) for one-line sources such as API_KEYS. */
export interface KeyTextProblem {
  readonly line: number
  readonly entry: number
  readonly message: string
  /** The message names the consumer, so it locates itself without a line or entry number. */
  readonly namesConsumer: boolean
}

export interface ParsedKeyText {
  readonly entries: ApiKeyEntrySpec[]
  /** The line of each entry (parallel to `entries`). */
  readonly lines: number[]
  readonly problems: KeyTextProblem[]
}

/**
 * Parses the key text. `keyHint` is appended to the message about a malformed key (how to
 * generate one). Keys repeated in the text are a problem (a key names one consumer).
 */
export function parseApiKeyText (text: string, keyHint = ''): ParsedKeyText {
  const entries: ApiKeyEntrySpec[] = []
  const entryLines: number[] = []
  const problems: KeyTextProblem[] = []
  const seen = new Map<string, string>()
  let entry = 0
  const lines = text.split('\n')
  for (let n = 0; n < lines.length; n++) {
    const line = n + 1
    const raw = (lines[n] as string).replace(/\r$/, '')
    const trimmed = raw.trim()
    if (trimmed === '' || trimmed.startsWith('#')) continue
    const problem = (message: string, namesConsumer = false): void => { problems.push({ line, entry, message, namesConsumer }) }
    const cut = ATTRIBUTE_START.exec(trimmed)
    const pairsText = cut === null ? trimmed : trimmed.slice(0, cut.index)
    const attrText = cut === null ? '' : trimmed.slice(cut.index).trim()
    const pairs = pairsText.split(',').map((s) => s.trim()).filter((s) => s !== '' && !s.startsWith('#'))
    const lineEntries: ApiKeyEntrySpec[] = []
    for (const pair of pairs) {
      entry++
      const at = pair.indexOf(':')
      const consumer = at > 0 ? pair.slice(0, at).trim() : ''
      const key = at > 0 ? pair.slice(at + 1).trim() : ''
      if (!CONSUMER.test(consumer)) {
        problem('needs a consumer name of letters, digits, \'._@-\' before \':\'')
      } else if (key.length < API_KEY.minLength || key.length > API_KEY.maxLength || !KEY.test(key)) {
        problem(`the key of consumer "${consumer}" must be ${API_KEY.minLength}-${API_KEY.maxLength} printable characters without spaces${keyHint}`, true)
      } else {
        const owner = seen.get(key)
        if (owner !== undefined) problem(owner === consumer ? `consumer "${consumer}" lists the same key twice` : `consumer "${consumer}" reuses another consumer's key`, true)
        else {
          seen.set(key, consumer)
          lineEntries.push({ consumer, key })
        }
      }
    }
    if (attrText !== '') {
      if (pairs.length !== 1) {
        problem('attributes (scopes=, expires=) need exactly one consumer:key before them on their line')
        continue
      }
      const attributes = attributesOf(attrText, problem)
      const e = lineEntries[0]
      if (attributes === undefined || e === undefined) continue
      if (attributes.scopes !== undefined) e.scopes = attributes.scopes
      if (attributes.expires !== undefined) e.expires = attributes.expires
    }
    for (const e of lineEntries) {
      entries.push(e)
      entryLines.push(line)
    }
  }
  return { entries, lines: entryLines, problems }
}

/** The attributes of one line, or undefined after reporting a problem. */
function attributesOf (text: string, problem: (message: string) => void): { scopes?: string[], expires?: string } | undefined {
  const out: { scopes?: string[], expires?: string } = {}
  let ok = true
  for (const token of text.split(/[ \t]+/)) {
    const m = ATTRIBUTE.exec(token)
    if (m === null) {
      problem('unexpected text among the attributes (write them as name=value: scopes=, expires=)')
      ok = false
      continue
    }
    const [, name, value] = m as unknown as [string, string, string]
    if (name !== 'scopes' && name !== 'expires') {
      problem('unknown attribute (known: scopes=, expires=)')
      ok = false
    } else if (out[name] !== undefined) {
      problem(`${name}= appears twice`)
      ok = false
    } else if (name === 'scopes') {
      const scopes = value.split(',')
      const bad = scopes.findIndex((s) => s === '' || s.length > 256 || !SCOPE.test(s))
      if (bad >= 0) {
        problem(`scopes=: scope ${bad + 1} is empty or not an RFC 6749 scope token (printable ASCII without space, " and \\)`)
        ok = false
      } else if (new Set(scopes).size !== scopes.length) {
        problem('scopes=: a scope is listed twice')
        ok = false
      } else if (scopes.length > MAX_KEY_SCOPES) {
        problem(`scopes=: more than ${MAX_KEY_SCOPES} scopes`)
        ok = false
      } else out.scopes = scopes
    } else if (!TIMESTAMP.test(value) || Number.isNaN(Date.parse(value))) {
      problem('expires=: not an RFC 3339 time with a time zone (e.g. 2027-01-31T00:00:00Z)')
      ok = false
    } else out.expires = value
  }
  return ok ? out : undefined
}

/** `<file> line <n>: <problem>`, as startup and reload report it. */
export function fileProblemLine (file: string, p: KeyTextProblem): string {
  return `${file} line ${p.line}: ${p.message}`
}

/** SHA-256 of the text (to skip a re-read that changed nothing). */
export function textDigest (text: string): string {
  return createHash('sha256').update(text).digest('hex')
}
