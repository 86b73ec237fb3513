/**
 * Placeholder and weak credential detection, used by the production checks in config.ts.
 *
 * A secret is refused when it was ever published (the demo credentials, the values an older
 * `.env.example` shipped), when it reads like a placeholder someone forgot to replace
 * (`change-me`, `your-secret`, `<token>`, `xxxx`, `todo`...), or when it is plainly not random
 * (one character repeated, a short pattern repeated, a run like `abcdef123456`). Random secrets
 * (base64, base64url, hex, 16 characters or more) never meet these rules. The reason given
 * never contains the secret.
 */

/** The command that writes a `.env` with generated secrets (see scripts/secrets.mjs). */
export const SECRETS_COMMAND = 'npm run secrets'

/** Values an older `.env.example` shipped; anyone who copied it has them. */
export const PUBLISHED_PLACEHOLDERS: readonly string[] = [
  'change-me-to-a-random-secret-of-32-bytes-or-more',
  'change-me-billing-key-0001',
  'change-me-reports-key-0002'
]

/**
 * Found anywhere in the value, ignoring case and the separators `-`, `_`, `.` and spaces. Seven
 * letters or more, so that a random value contains one by chance about once in 10^9.
 */
const PLACEHOLDER_PHRASES = ['changeme', 'replaceme', 'changethis', 'replacethis', 'yoursecret', 'yourkey', 'yourapikey', 'yourtoken', 'yourpassword', 'placeholder', 'example', 'notasecret']
const PHRASE = new RegExp(PLACEHOLDER_PHRASES.join('|'))
/** A value that starts with one of these words (then a separator) is unfinished. */
const PLACEHOLDER_WORD = /^(todo|fixme|sample|dummy|insert|TODO|FIXME|SAMPLE|DUMMY|INSERT)(?:$|[-_ :.])/
/** Values that are nothing but one of these words (possibly with digits after it). */
const WHOLE_WORD = /^(?:secret|password|passwd|apikey|api-key|api_key|token|key|test|admin|default|demo)\d*$/i

/** Fewest different characters a random value of this length can be expected to have. */
function minDistinct (length: number): number {
  return Math.min(8, Math.floor(length / 4))
}

/** How many different characters `value` has (counting stops at 8: enough for the rule). */
function distinct (value: string): number {
  const seen: string[] = []
  for (let i = 0; i < value.length && seen.length < 8; i++) {
    const c = value[i] as string
    if (!seen.includes(c)) seen.push(c)
  }
  return seen.length
}

/** Whether `value` is a shorter unit repeated (`abcabcabc`, `1234512345`). */
function repeatsUnit (value: string): boolean {
  for (let unit = 1; unit <= value.length / 2; unit++) {
    let same = true
    for (let i = unit; i < value.length && same; i++) same = value[i] === value[i - unit]
    if (same) return true
  }
  return false
}

/** Whether three quarters of the neighbouring characters step by one (`0123456789`, `abcdef`, `98765`). */
function mostlySequential (value: string): boolean {
  let steps = 0
  for (let i = 1; i < value.length; i++) {
    const d = value.charCodeAt(i) - value.charCodeAt(i - 1)
    if (d === 1 || d === -1) steps++
  }
  return value.length > 1 && steps * 4 >= (value.length - 1) * 3
}

/**
 * Why `value` cannot be a real secret, in words (never echoing it), or undefined when it may be.
 * `published` are the exact values anyone can read (demo credentials, example files).
 */
export function weakSecretReason (value: string, published: ReadonlySet<string>): string | undefined {
  if (published.has(value)) return 'is a published example value'
  const lower = value.toLowerCase()
  const phrase = PHRASE.exec(lower.replace(/[-_. ]+/g, ''))
  if (phrase !== null) return `looks like a placeholder (it contains "${phrase[0]}")`
  if (WHOLE_WORD.test(value)) return 'is a placeholder word, not a secret'
  if (/<[^<>]*>|\{\{[^{}]*\}\}|\$\{[^{}]*\}/.test(value)) return 'looks like a placeholder (a <...> or {{...}} template left in)'
  if (/x{4,}|\*{3,}/i.test(value) && new Set(lower.replace(/[^a-z0-9]/g, '')).size <= 3) return 'looks like a placeholder (xxxx)'
  const word = PLACEHOLDER_WORD.exec(value)
  if (word !== null) return `looks like a placeholder (the word "${(word[1] ?? '').toLowerCase()}")`
  if (distinct(value) < minDistinct(value.length)) return 'is not random (too few different characters)'
  if (repeatsUnit(value)) return 'is not random (a short pattern repeated)'
  if (mostlySequential(value)) return 'is not random (mostly a run like "abcdef" or "123456")'
  return undefined
}
