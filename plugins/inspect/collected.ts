/**
 * The values of one request phase, one list per engine address (addresses.ts), as extraction
 * files them: every value goes to the list of its source (query, body, keys, ...) or, for the
 * sources the registry splits by shape, to that source's bare-word or text-word list
 * (text-words.ts). Strings over CHUNK_CHARS are split into overlapping pieces (the engine reads
 * 4,096 bytes of a string) and a short value repeated in a list is kept once. A per-phase budget
 * of characters bounds the work; past it the request is refused (`InspectLimitError` reason
 * `size`) instead of being half inspected.
 *
 * With a verdict cache, a value the engine judged clean before is dropped; with a word screen
 * (screen.ts), a word no rule reading its list could match is dropped too (remembered as clean),
 * or, for a text word some rule the screen cannot read takes, moved to the screened list.
 */
import { BARE_WORD_LIST, CACHE_LIST, CACHED_LIST_COUNT, LIST_COUNT, LISTS, SCREEN_BARE, SCREEN_KIND, SCREEN_NONE, SCREEN_TEXT, SCREENED_LIST, TEXT_WORD_LIST, type ListName } from './addresses.js'
import { BARE_WORD, TEXT_WORD } from './text-words.js'
import { appendLists, packLists } from './payload.js'
import { InspectLimitError } from './limit-error.js'

export { packJoint } from './payload.js'

/** Strings longer than this are split (1,360 UTF-16 units stay under 4,096 UTF-8 bytes). */
const CHUNK_CHARS = 1360
/** Overlap between pieces, so a pattern shorter than this is never cut in two. */
const CHUNK_OVERLAP = 256
/** Values up to this length are added once per list (JSON arrays repeat their keys). */
const DEDUPE_MAX_CHARS = 256
/** Lists shorter than this are scanned for repeats instead of hashed. */
const DEDUPE_SCAN_MAX = 16
/** Longest value filed as a bare word. */
const BARE_WORD_MAX_CHARS = 64
/** Longest value whose clean verdict is remembered. */
const CACHE_MAX_CHARS = 256

const PROSE_MIN_CHARS = 64
const PROSE_MIN_SPACES = 6
/** Free text: long, with several words. libinjection (made for short parameter values) misreads it. */
function isProse (value: string): boolean {
  if (value.length < PROSE_MIN_CHARS) return false
  let spaces = 0
  for (let i = 0; i < value.length && spaces < PROSE_MIN_SPACES; i++) if (value.charCodeAt(i) === 32) spaces++
  return spaces >= PROSE_MIN_SPACES
}

/**
 * Values the engine judged clean, per list, so a repeated benign value (a path, a header, an
 * enum in a query) is not evaluated again. Sound only when every rule reads one address with one
 * condition and no key path, so a value's verdict depends on nothing but the value and its address
 * (InspectEngine.cacheable). Only values of evaluations with no match and no timeout are stored, so
 * a value that matches any rule is never remembered. Two generations bound the memory: when the
 * young one holds `capacity` values it becomes the old one and the previous old one is dropped.
 */
export class VerdictCache {
  private young: Array<Set<string>> = VerdictCache.sets()
  private old: Array<Set<string>> = VerdictCache.sets()
  private size = 0

  constructor (private readonly capacity: number) {}

  private static sets (): Array<Set<string>> {
    return Array.from({ length: CACHED_LIST_COUNT }, () => new Set<string>())
  }

  has (list: number, value: string): boolean {
    if ((this.young[list] as Set<string>).has(value)) return true
    if (!(this.old[list] as Set<string>).has(value)) return false
    this.put(list, value)
    return true
  }

  put (list: number, value: string): void {
    const set = this.young[list] as Set<string>
    if (set.has(value)) return
    set.add(value)
    if (++this.size >= this.capacity) {
      this.old = this.young
      this.young = VerdictCache.sets()
      this.size = 0
    }
  }
}

/**
 * Decides, per bare-word and text-word list, whether any loaded rule the screen reads in
 * JavaScript could match a value (screen.ts).
 */
export interface WordScreen {
  /** False only when no such rule reading list `list` can match `word`. */
  relevant: (list: number, word: string) => boolean
  /**
   * For a text-word list: whether some rule the screen cannot read takes its screened values
   * (they then go to the screened list; otherwise a value `relevant` clears is clean).
   */
  residual: (list: number) => boolean
}

export class Collected implements Record<ListName, string[]> {
  readonly path: string[] = []
  readonly query: string[] = []
  readonly headers: string[] = []
  readonly cookies: string[] = []
  readonly body: string[] = []
  readonly keys: string[] = []
  readonly files: string[] = []
  readonly text: string[] = []
  readonly words: string[] = []
  readonly queryWords: string[] = []
  readonly cookieWords: string[] = []
  readonly bodyWords: string[] = []
  readonly keyText: string[] = []
  readonly queryText: string[] = []
  readonly cookieText: string[] = []
  readonly bodyText: string[] = []
  readonly keyTextScreened: string[] = []
  readonly queryTextScreened: string[] = []
  readonly cookieTextScreened: string[] = []
  readonly bodyTextScreened: string[] = []
  /**
   * The lists by list number: addresses.json's order, checked when this module loads (a literal
   * array of the fields keeps constructing a Collected as cheap as constructing its lists).
   */
  private readonly lists: string[][] = [this.path, this.query, this.headers, this.cookies, this.body, this.keys, this.files, this.text, this.words, this.queryWords, this.cookieWords, this.bodyWords,
    this.keyText, this.queryText, this.cookieText, this.bodyText, this.keyTextScreened, this.queryTextScreened, this.cookieTextScreened, this.bodyTextScreened]

  static {
    const probe = new Collected(0)
    const ordered = probe.lists.length === LIST_COUNT && LISTS.every((e, i) => probe.lists[i] === probe[e.name])
    if (!ordered) throw new Error('Collected: its lists are not in the order of addresses.json')
  }

  private chars = 0
  private readonly budget: number
  /** Sets of the short values of long lists, made only when a list grows past DEDUPE_SCAN_MAX. */
  private seen: Map<string[], Set<string>> | undefined

  private readonly cache: VerdictCache | undefined
  private readonly screen: WordScreen | undefined

  constructor (budget: number, cache?: VerdictCache, screen?: WordScreen) {
    this.budget = budget
    this.cache = cache
    this.screen = screen
  }

  /** Remembers every value of this (clean) evaluation in the cache it was collected with. */
  rememberClean (): void {
    const cache = this.cache
    if (cache === undefined) return
    for (let i = 0; i < LIST_COUNT; i++) {
      const list = this.lists[i] as string[]
      const n = CACHE_LIST[i] as number
      for (const value of list) if (value.length <= CACHE_MAX_CHARS) cache.put(n, value)
    }
  }

  add (list: string[], value: string): void {
    if (value === '') return
    let n = this.lists.indexOf(list)
    // A value of a source split by shape that is a bare word (ids, numbers, enum values: most of
    // them) is read only by the rules that can match a bare word: no decoding transformer changes
    // it. Other text words (names, search terms, dates) are read only by the rules that can match one.
    const bare = BARE_WORD_LIST[n] as number
    if (bare !== -1) {
      if (value.length <= BARE_WORD_MAX_CHARS && BARE_WORD.test(value)) n = bare
      else if (TEXT_WORD.test(value)) n = TEXT_WORD_LIST[n] as number
    }
    this.chars += value.length
    if (this.chars > this.budget) throw new InspectLimitError('size')
    const target = this.lists[n] as string[]
    if (this.cache === undefined && this.screen === undefined) {
      this.push(target, value)
      return
    }
    const cacheable = this.cache !== undefined && value.length <= CACHE_MAX_CHARS
    if (cacheable && (this.cache as VerdictCache).has(n, value)) return
    // A bare word that no rule reading its list could match (most ids, numbers and enum values)
    // needs no engine run at all (and is clean: remembered like a judged value). A text word
    // (unsplit) that no rule the screen reads could match goes to the rules it cannot read.
    const screen = this.screen
    const kind = SCREEN_KIND[n] as number
    if (kind !== SCREEN_NONE && screen !== undefined && (kind === SCREEN_BARE || value.length <= CHUNK_CHARS) && !screen.relevant(n, value)) {
      if (kind === SCREEN_TEXT && screen.residual(n)) {
        this.push(this.lists[SCREENED_LIST[n] as number] as string[], value)
        return
      }
      if (cacheable) (this.cache as VerdictCache).put(n, value)
      return
    }
    this.push(target, value)
  }

  private push (list: string[], value: string): void {
    if (value.length <= DEDUPE_MAX_CHARS && this.repeated(list, value)) return
    if (value.length <= CHUNK_CHARS) {
      list.push(value)
      return
    }
    const step = CHUNK_CHARS - CHUNK_OVERLAP
    for (let i = 0; i < value.length; i += step) {
      list.push(value.slice(i, i + CHUNK_CHARS))
      if (i + CHUNK_CHARS >= value.length) break
    }
  }

  /**
   * Whether a short value is already in the list (a repeated key or value judges the same).
   * Small lists (most requests) are scanned, with no allocation; a Set is made for long ones.
   */
  private repeated (list: string[], value: string): boolean {
    if (list.length < DEDUPE_SCAN_MAX) return list.includes(value)
    this.seen ??= new Map()
    let set = this.seen.get(list)
    if (set === undefined) {
      set = new Set(list)
      this.seen.set(list, set)
    }
    if (set.has(value)) return true
    set.add(value)
    return false
  }

  /** A body value: long prose goes to `text`, everything else to `body`. */
  addBody (value: string): void {
    this.add(isProse(value) ? this.text : this.body, value)
  }

  /** A key or field name: plain identifiers go to `words`, other text words to `keyText`, anything else to `keys`. */
  addKey (key: string): void {
    this.add(this.keys, key)
  }

  /** Characters collected (every value added, judged or not): what an engine run over them costs. */
  get size (): number {
    return this.chars
  }

  get empty (): boolean {
    for (let i = 0; i < LIST_COUNT; i++) if ((this.lists[i] as string[]).length > 0) return false
    return true
  }

  /** Whether every value collected went to a screened list (the engine's small ruleset judges them). */
  get onlyScreened (): boolean {
    for (let i = 0; i < CACHED_LIST_COUNT; i++) if ((this.lists[i] as string[]).length > 0) return false
    for (let i = CACHED_LIST_COUNT; i < LIST_COUNT; i++) if ((this.lists[i] as string[]).length > 0) return true
    return false
  }

  /** The engine payload: each non-empty list, packed to the engine's container limits. */
  payload (): Record<string, unknown> {
    return packLists(this.lists)
  }

  /** Appends every value to `joint`'s list of its address (one engine run over several phases). */
  appendTo (joint: Record<string, string[]>): void {
    appendLists(this.lists, joint)
  }
}
