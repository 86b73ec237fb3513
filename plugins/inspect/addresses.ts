/**
 * The address registry: which engine addresses inspection fills and how they relate, read from
 * addresses.json (rules/generate.mjs reads the same file). Every list number, counterpart map and
 * per-list property the extraction, the screen and the engine use is derived here; nothing else
 * spells an address or a list number.
 *
 * A request phase is collected into one value list per entry, numbered in the file's order:
 * - `standard`: the addresses rules name (`server.request.query`, ...);
 * - `prose`: long free text of a standard list (read by its rules but the `prose` skips);
 * - `bareWords` / `textWords`: the values of a standard list that are bare words / text words
 *   (text-words.ts), read only by the rules that could match one (routing.ts decides which);
 * - `screened`: the text words of a text-word list the JavaScript screen cleared (screen.ts), read
 *   only by the rules the screen cannot read. These come last: the verdict cache keeps a screened
 *   value under its text-word list, so only the lists before them are cached.
 */
import registry from './addresses.json' with { type: 'json' }

export type ListKind = 'standard' | 'prose' | 'bareWords' | 'textWords' | 'screened'

/** One value list: its name (Collected's field), engine address, kind and the list it derives from. */
export interface ListEntry {
  readonly name: ListName
  readonly address: string
  readonly kind: ListKind
  /** The list this one takes values of (absent for a standard list). */
  readonly of?: ListName
}

/** The list names addresses.json may use: Collected's fields (checked when this module loads). */
const LIST_NAMES = [
  'path', 'query', 'headers', 'cookies', 'body', 'keys', 'files', 'text',
  'words', 'queryWords', 'cookieWords', 'bodyWords', 'keyText', 'queryText', 'cookieText', 'bodyText',
  'keyTextScreened', 'queryTextScreened', 'cookieTextScreened', 'bodyTextScreened'
] as const
export type ListName = typeof LIST_NAMES[number]
const KINDS: ReadonlySet<string> = new Set(['standard', 'prose', 'bareWords', 'textWords', 'screened'])

/** Every value list, in list-number order. */
export const LISTS: readonly ListEntry[] = Object.freeze(registry.lists.map((e) => {
  if (!(LIST_NAMES as readonly string[]).includes(e.name) || !KINDS.has(e.kind) || (e.kind === 'standard') !== (e.of === undefined)) {
    throw new Error(`addresses.json: bad list ${JSON.stringify(e)}`)
  }
  return Object.freeze({ ...e }) as ListEntry
}))

/** Number of value lists a Collected holds. */
export const LIST_COUNT = LISTS.length

const numberOf = new Map<string, number>(LISTS.map((e, i) => [e.name, i]))
function listNumber (name: string | undefined): number {
  const n = name === undefined ? undefined : numberOf.get(name)
  if (n === undefined) throw new Error(`addresses.json: unknown list ${String(name)}`)
  return n
}

/** Engine addresses, by list name. */
export const ADDRESS: Readonly<Record<ListName, string>> = Object.freeze(Object.fromEntries(LISTS.map((e) => [e.name, e.address])) as Record<ListName, string>)

/** The engine address of each list, by list number. */
export const LIST_ADDRESSES: readonly string[] = Object.freeze(LISTS.map((e) => e.address))

/** Per list number: the list of the given kind that takes its values, or -1. */
function counterpartLists (kind: ListKind): readonly number[] {
  const out: number[] = LISTS.map(() => -1)
  LISTS.forEach((e, i) => { if (e.kind === kind) out[listNumber(e.of)] = i })
  return Object.freeze(out)
}

/** Per list number: the number of the list it takes values of (-1 for a standard list). */
export const SOURCE_LIST: readonly number[] = Object.freeze(LISTS.map((e) => e.of === undefined ? -1 : listNumber(e.of)))

/** Per list number: its bare-word list (-1 when its values are not split by shape). */
export const BARE_WORD_LIST = counterpartLists('bareWords')
/** Per list number: its text-word list (-1 when its values are not split by shape). */
export const TEXT_WORD_LIST = counterpartLists('textWords')
/** Per list number: the screened list of a text-word list (-1 for any other list). */
export const SCREENED_LIST = counterpartLists('screened')

// The extraction relies on these: a source split by shape has both word lists, text words a screened list.
for (let i = 0; i < LIST_COUNT; i++) {
  if ((BARE_WORD_LIST[i] === -1) !== (TEXT_WORD_LIST[i] === -1)) throw new Error('addresses.json: a list split by shape needs both a bareWords and a textWords list')
  if ((TEXT_WORD_LIST[i] as number) !== -1 && SCREENED_LIST[TEXT_WORD_LIST[i] as number] === -1) throw new Error('addresses.json: a textWords list needs a screened list')
}

/** What the JavaScript screen does with a list's values (screen.ts). */
export const SCREEN_NONE = 0
/** Bare words: a value the screen clears is clean. */
export const SCREEN_BARE = 1
/** Text words: a value the screen clears goes to the screened list, when some rule reads it. */
export const SCREEN_TEXT = 2
/** Per list number: SCREEN_NONE, SCREEN_BARE or SCREEN_TEXT. */
export const SCREEN_KIND: Readonly<Uint8Array> = Uint8Array.from(LISTS, (e) => e.kind === 'bareWords' ? SCREEN_BARE : e.kind === 'textWords' ? SCREEN_TEXT : SCREEN_NONE)

/**
 * Per list number: the list number its clean values are remembered under in the verdict cache. A
 * screened value is clean for every rule reading its text-word list (the screen cleared it of the
 * rules it reads, the engine of the others), so it is kept as a text word.
 */
export const CACHE_LIST: readonly number[] = Object.freeze(LISTS.map((e, i) => e.kind === 'screened' ? SOURCE_LIST[i] as number : i))
/** Number of lists the verdict cache keeps (the screened lists share their text-word list's). */
export const CACHED_LIST_COUNT = LISTS.filter((e) => e.kind !== 'screened').length

for (let i = 0; i < LIST_COUNT; i++) {
  if ((LISTS[i] as ListEntry).kind === 'screened' ? i < CACHED_LIST_COUNT : i >= CACHED_LIST_COUNT) throw new Error('addresses.json: screened lists must come last')
}

/** Address -> address maps, for rewriting rulesets (routing.ts). */
function addressMap (kind: ListKind): Readonly<Record<string, string>> {
  return Object.freeze(Object.fromEntries(LISTS.filter((e) => e.kind === kind).map((e) => [ADDRESS[e.of as ListName], e.address])))
}
/** Each standard address and the address its bare-word values go to. */
export const PLAIN_COUNTERPART = addressMap('bareWords')
/** Each standard address and the address its text-word values go to. */
export const TEXT_COUNTERPART = addressMap('textWords')
/** Each standard address and the address its prose goes to. */
export const PROSE_COUNTERPART = addressMap('prose')
/** Each text-word address and the address its screened values go to. */
export const SCREENED_COUNTERPART = addressMap('screened')

/** Address -> list number for one kind. */
function listsOf (kind: ListKind): Readonly<Record<string, number>> {
  return Object.freeze(Object.fromEntries(LISTS.flatMap((e, i) => e.kind === kind ? [[e.address, i]] : [])))
}
/** List numbers of the bare-word lists, by address. */
export const WORD_LISTS = listsOf('bareWords')
/** List numbers of the text-word lists, by address. */
export const TEXT_LISTS = listsOf('textWords')
/** List numbers of the screened lists, by address. */
export const SCREENED_LISTS = listsOf('screened')

/** The addresses of the screened lists. */
export const SCREENED_ADDRESSES: ReadonlySet<string> = new Set(Object.keys(SCREENED_LISTS))

/** Operators not routed to a derived kind of list although they read its standard list. */
export const ROUTING_SKIPS: Readonly<{ prose: ReadonlySet<string>, bareWords: ReadonlySet<string> }> = Object.freeze({
  prose: new Set(registry.routing.prose.skipOperators),
  bareWords: new Set(registry.routing.bareWords.skipOperators)
})
