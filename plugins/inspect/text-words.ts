/**
 * Which rules can match a "text-word" value: one made only of ASCII letters, digits, spaces and
 * `_ - . , : @` (names, search terms, dates, e-mail addresses: most free-text parameter values).
 *
 * Such values go to their own engine addresses (extract.ts), read only by the rules that could
 * match one; the analysis here decides that, at load time, from each rule itself:
 * - every transformer of the rule must map text-word strings to text-word strings (the decoders
 *   find nothing to decode: no `%`, `+`, `&` or `\`; the others only lower-case, delete or turn
 *   characters into spaces); an unknown transformer keeps the rule reading text words;
 * - the operator: `match_regex` is decided on the regex's syntax tree (below); `phrase_match`
 *   by whether some phrase is itself a text word; `is_xss` never matches one (below); every other
 *   operator (libinjection's is_sqli among them) keeps reading text words.
 *
 * libinjection's XSS check (`is_xss`) tokenizes the value as HTML in five contexts (data, and
 * inside an unquoted, single-, double- or back-quoted attribute value) and reports only a
 * doctype, a tag or comment (each opened by `<`), or an attribute value after a listed attribute
 * name (a value follows a name only after `=`); the first value of a quoted context has no name
 * before it. A text word has no `<` and no `=`, so no context yields one of those tokens.
 *
 * The regex test is a sound over-approximation: a node "can match" unless it needs, in every
 * way it can match, a character that is not a text-word character. Assertions, lookarounds,
 * backreferences, negated classes and escapes (\d, \w, \s, ., \p{..}) count as able to match, so
 * an uncertain case always keeps the rule reading text words; a regex that does not parse as
 * JavaScript with the `u` flag does too.
 */
import { RegExpParser, type AST } from '@eslint-community/regexpp'

/** A text-word value (the same alphabet as the analysis below). */
export const TEXT_WORD = /^[A-Za-z0-9 _.,:@-]+$/

const ALPHABET: readonly number[] = (() => {
  const codes: number[] = []
  for (let c = 0; c < 128; c++) if (TEXT_WORD.test(String.fromCharCode(c))) codes.push(c)
  return codes
})()
const IN_ALPHABET: ReadonlySet<number> = new Set(ALPHABET)

/** Transformers that turn a text word into a text word (no %, +, & or \ to decode; deletions, spaces, lower case). */
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
function charInAlphabet (c: number, icase: boolean): boolean {
  if (icase && c > 127) return true
  return IN_ALPHABET.has(c) || (icase && IN_ALPHABET.has(swapCase(c)))
}

function rangeHitsAlphabet (min: number, max: number, icase: boolean): boolean {
  if (icase && max > 127) return true
  for (const c of ALPHABET) {
    if ((c >= min && c <= max) || (icase && swapCase(c) >= min && swapCase(c) <= max)) return true
  }
  return false
}

type Node = AST.Alternative | AST.Element | AST.CharacterClassElement

function canMatch (node: Node, icase: boolean): boolean {
  switch (node.type) {
    case 'Alternative':
      return node.elements.every((e) => canMatch(e, icase))
    case 'Group':
    case 'CapturingGroup':
      return node.alternatives.some((a) => canMatch(a, icase))
    case 'Quantifier':
      return node.min === 0 || canMatch(node.element, icase)
    case 'Character':
      return charInAlphabet(node.value, icase)
    case 'CharacterClass':
      if (node.negate || node.unicodeSets) return true
      return node.elements.some((e) => canMatch(e, icase))
    case 'CharacterClassRange':
      return rangeHitsAlphabet(node.min.value, node.max.value, icase)
    default:
      // Assertions, lookarounds, backreferences, escapes and sets (\d \w \s . \p{..}), v-flag
      // constructs: assumed able to match.
      return true
  }
}

/** Whether a regex (as libddwaf reads it, JavaScript syntax with the u flag) can match some text word. */
export function regexCanMatchTextWord (source: string, caseSensitive: boolean): boolean {
  let pattern: AST.Pattern
  try {
    RegExp(source, caseSensitive ? 'u' : 'iu')
    pattern = new RegExpParser({ ecmaVersion: 2024 }).parsePattern(source, 0, source.length, { unicode: true })
  } catch {
    return true
  }
  return pattern.alternatives.some((a) => canMatch(a, !caseSensitive))
}

interface ConditionLike {
  operator?: unknown
  parameters?: { regex?: unknown, list?: unknown, options?: { case_sensitive?: unknown } }
}

/** Whether a rule condition, after the rule's transformers, could match a text-word value. */
export function conditionCanMatchTextWord (transformers: unknown, condition: ConditionLike): boolean {
  const list = Array.isArray(transformers) ? transformers as unknown[] : []
  if (!list.every((t) => typeof t === 'string' && CLOSED_TRANSFORMERS.has(t))) return true
  const p = condition.parameters
  if (condition.operator === 'match_regex' && typeof p?.regex === 'string') {
    return regexCanMatchTextWord(p.regex, p.options?.case_sensitive === true)
  }
  if (condition.operator === 'is_xss') return false
  if (condition.operator === 'phrase_match' && Array.isArray(p?.list)) {
    // A phrase is found inside a text word only if it is made of text-word characters itself.
    return (p.list as unknown[]).some((phrase) => typeof phrase !== 'string' || phrase === '' || TEXT_WORD.test(phrase))
  }
  return true
}
