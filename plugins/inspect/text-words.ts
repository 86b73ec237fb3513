/**
 * Which rules can match a "text-word" value, one made only of ASCII letters, digits, spaces and
 * `_ - . , : @` (names, search terms, dates, e-mail addresses: most free-text parameter values),
 * and which can match a "bare word", one made only of letters, digits, `_` and `-` (ids, numbers,
 * enum values, plain keys: most parameter values). A bare word is a text word too.
 *
 * Such values go to their own engine addresses (collected.ts), read only by the rules that could
 * match one; the analysis here decides that, at load time, from each rule itself (routing.ts):
 * - every transformer of the rule must map words to words of the same kind (the decoders find
 *   nothing to decode: no `%`, `+`, `&` or `\`; the others only lower-case, delete or turn
 *   characters into spaces, and a bare word has no space to turn into one); an unknown
 *   transformer keeps the rule reading such words;
 * - the operator: `match_regex` is decided on the regex's syntax tree (below); `phrase_match`
 *   by whether some phrase is itself such a word; `is_xss` never matches one (below); every other
 *   operator (libinjection's is_sqli among them) keeps reading them.
 *
 * libinjection's XSS check (`is_xss`) tokenizes the value as HTML in five contexts (data, and
 * inside an unquoted, single-, double- or back-quoted attribute value) and reports only a
 * doctype, a tag or comment (each opened by `<`), or an attribute value after a listed attribute
 * name (a value follows a name only after `=`); the first value of a quoted context has no name
 * before it. A text word has no `<` and no `=`, so no context yields one of those tokens.
 *
 * The regex test is a sound over-approximation: a node "can match" unless it needs, in every
 * way it can match, a character outside the word's alphabet. Assertions, lookarounds,
 * backreferences, negated classes and `.` count as able to match; a class escape (\d, \s, \w,
 * \p{..} and their negations) can match when it matches some character of the alphabet. An
 * uncertain case always keeps the rule reading such words, and so does a regex that does not
 * parse as JavaScript with the `u` flag once RE2's `\x{...}` is read as `\u{...}`.
 */
import { RegExpParser, type AST } from '@eslint-community/regexpp'

/** A text-word value (the same alphabet as the analysis below). */
export const TEXT_WORD = /^[A-Za-z0-9 _.,:@-]+$/
/** A bare-word value (the same alphabet as the analysis below). */
export const BARE_WORD = /^[A-Za-z0-9_-]+$/

/** One kind of word: the ASCII characters it is made of. */
interface Alphabet {
  readonly word: RegExp
  readonly codes: readonly number[]
  readonly has: ReadonlySet<number>
}

function alphabet (word: RegExp): Alphabet {
  const codes: number[] = []
  for (let c = 0; c < 128; c++) if (word.test(String.fromCharCode(c))) codes.push(c)
  return { word, codes, has: new Set(codes) }
}

const TEXT: Alphabet = alphabet(TEXT_WORD)
const BARE: Alphabet = alphabet(BARE_WORD)

/** Transformers that turn a word into a word of the same kind (no %, +, & or \ to decode; deletions, spaces, lower case). */
const CLOSED_TRANSFORMERS: ReadonlySet<string> = new Set([
  'lowercase', 'urlDecodeUni', 'urlDecode', 'url_decode', 'url_decode_iis', 'htmlEntityDecode', 'html_entity_decode',
  'jsDecode', 'js_decode', 'cssDecode', 'css_decode', 'removeNulls', 'remove_nulls', 'compressWhiteSpace',
  'compress_whitespace', 'shell_unescape', 'removeComments', 'remove_comments'
])

function swapCase (c: number): number {
  if (c >= 65 && c <= 90) return c + 32
  if (c >= 97 && c <= 122) return c - 32
  return c
}

// Case-insensitive matching folds some non-ASCII characters onto ASCII letters (U+017F onto
// s, U+212A onto k): under it, anything outside ASCII counts as able to match.
function charInAlphabet (a: Alphabet, c: number, icase: boolean): boolean {
  if (icase && c > 127) return true
  return a.has.has(c) || (icase && a.has.has(swapCase(c)))
}

function rangeHitsAlphabet (a: Alphabet, min: number, max: number, icase: boolean): boolean {
  if (icase && max > 127) return true
  for (const c of a.codes) {
    if ((c >= min && c <= max) || (icase && swapCase(c) >= min && swapCase(c) <= max)) return true
  }
  return false
}

/** Whether a class escape (\d, \s, \w, \p{..}, negated or not) matches some character of the alphabet. */
function setHitsAlphabet (a: Alphabet, raw: string, icase: boolean): boolean {
  let re: RegExp
  try {
    re = new RegExp(raw, icase ? 'iu' : 'u')
  } catch {
    return true
  }
  return a.codes.some((c) => re.test(String.fromCharCode(c)))
}

type Node = AST.Alternative | AST.Element | AST.CharacterClassElement

function canMatch (a: Alphabet, node: Node, icase: boolean): boolean {
  switch (node.type) {
    case 'Alternative':
      return node.elements.every((e) => canMatch(a, e, icase))
    case 'Group':
    case 'CapturingGroup':
      return node.alternatives.some((alt) => canMatch(a, alt, icase))
    case 'Quantifier':
      return node.min === 0 || canMatch(a, node.element, icase)
    case 'Character':
      return charInAlphabet(a, node.value, icase)
    case 'CharacterClass':
      if (node.negate || node.unicodeSets) return true
      return node.elements.some((e) => canMatch(a, e, icase))
    case 'CharacterClassRange':
      return rangeHitsAlphabet(a, node.min.value, node.max.value, icase)
    case 'CharacterSet':
      // `.` matches every character of either alphabet; a property of strings (v flag) is not analysed.
      if (node.kind === 'any' || (node.kind === 'property' && node.strings)) return true
      return setHitsAlphabet(a, node.raw, icase)
    default:
      // Assertions, lookarounds, backreferences and v-flag constructs: assumed able to match.
      return true
  }
}

const RE2_HEX = /\\\\|\\x\{([0-9A-Fa-f]{1,6})\}/g

/** RE2's `\x{10FFFF}` escapes as JavaScript's `\u{10FFFF}` (escaped backslashes left alone). */
function fromRe2 (source: string): string {
  return source.includes('\\x{') ? source.replace(RE2_HEX, (m, hex: string | undefined) => hex === undefined ? m : `\\u{${hex}}`) : source
}

function regexCanMatch (a: Alphabet, source: string, caseSensitive: boolean): boolean {
  let pattern: AST.Pattern
  try {
    const js = fromRe2(source)
    RegExp(js, caseSensitive ? 'u' : 'iu')
    pattern = new RegExpParser({ ecmaVersion: 2024 }).parsePattern(js, 0, js.length, { unicode: true })
  } catch {
    return true
  }
  return pattern.alternatives.some((alt) => canMatch(a, alt, !caseSensitive))
}

/** Whether a regex (as libddwaf reads it, JavaScript syntax with the u flag) can match some text word. */
export function regexCanMatchTextWord (source: string, caseSensitive: boolean): boolean {
  return regexCanMatch(TEXT, source, caseSensitive)
}

/** Whether a regex (as libddwaf reads it) can match some bare word. */
export function regexCanMatchBareWord (source: string, caseSensitive: boolean): boolean {
  return regexCanMatch(BARE, source, caseSensitive)
}

interface ConditionLike {
  operator?: unknown
  parameters?: { regex?: unknown, list?: unknown, options?: { case_sensitive?: unknown } }
}

function conditionCanMatch (a: Alphabet, transformers: unknown, condition: ConditionLike): boolean {
  const list = Array.isArray(transformers) ? transformers as unknown[] : []
  if (!list.every((t) => typeof t === 'string' && CLOSED_TRANSFORMERS.has(t))) return true
  const p = condition.parameters
  if (condition.operator === 'match_regex' && typeof p?.regex === 'string') {
    return regexCanMatch(a, p.regex, p.options?.case_sensitive === true)
  }
  // A bare word is a text word: neither has `<` or `=`.
  if (condition.operator === 'is_xss') return false
  if (condition.operator === 'phrase_match' && Array.isArray(p?.list)) {
    // A phrase is found inside a word only if it is made of the word's characters itself.
    return (p.list as unknown[]).some((phrase) => typeof phrase !== 'string' || phrase === '' || a.word.test(phrase))
  }
  return true
}

/** Whether a rule condition, after the rule's transformers, could match a text-word value. */
export function conditionCanMatchTextWord (transformers: unknown, condition: ConditionLike): boolean {
  return conditionCanMatch(TEXT, transformers, condition)
}

/** Whether a rule condition, after the rule's transformers, could match a bare-word value. */
export function conditionCanMatchBareWord (transformers: unknown, condition: ConditionLike): boolean {
  return conditionCanMatch(BARE, transformers, condition)
}
