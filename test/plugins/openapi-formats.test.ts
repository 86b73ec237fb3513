/**
 * The contract's `date`, `time` and `date-time` formats give exactly ajv-formats' full-mode
 * verdicts: on hand-picked edge cases (leap years, leap seconds, time zones, separators) and on
 * strings generated around valid timestamps by replacing, inserting and deleting characters.
 */
import t from 'tap'
import { fullFormats } from 'ajv-formats/dist/formats.js'
import { isDate, isDateTime, isTime } from '../../plugins/openapi/formats.js'

type Check = (s: string) => boolean
const reference = (name: 'date' | 'time' | 'date-time'): Check => {
  const f = fullFormats[name] as { validate: Check }
  return f.validate
}
const pairs: Array<[string, Check, Check]> = [
  ['date', isDate, reference('date')],
  ['time', isTime, reference('time')],
  ['date-time', isDateTime, reference('date-time')]
]

const EDGES = [
  '2024-02-29', '2023-02-29', '2000-02-29', '1900-02-29', '0000-02-29', '2024-04-31', '2024-12-31', '2024-13-01', '2024-00-10', '2024-01-00',
  '2024-1-01', '20240101', '2024-01-01 ', ' 2024-01-01', '2024-01-01\n', '２０２４-01-01',
  '23:59:60Z', '23:59:60.5Z', '22:59:60-01:00', '00:59:60+01:00', '23:59:61Z', '12:00:60Z', '24:00:00Z', '23:60:00Z', '12:00:00', '12:00:00z',
  '12:00:00+01', '12:00:00+0130', '12:00:00+01:30', '12:00:00+01:', '12:00:00+1:30', '12:00:00+24:00', '12:00:00+23:60', '12:00:00.Z', '12:00:00.123456789Z',
  '12:00:00,5Z', '12:00:00ZZ', '12:00:00+01:30Z', '12:00Z', '1:00:00Z', '12:00:00 Z',
  '2024-02-29T23:59:60Z', '2024-02-29t12:00:00z', '2024-02-29 12:00:00Z', '2024-02-29\t12:00:00Z', '2024-02-29\u00a012:00:00Z', '2024-02-29\u200912:00:00Z',
  '2024-02-29\ufeff12:00:00Z', '2024-02-29_12:00:00Z', '2024-02-29TT12:00:00Z', '2024-02-29T12:00:00', '2024-02-30T12:00:00Z', '2026-11-28T14:03:27.512Z',
  '2026-11-28T14:03:27.512+05:45', '2026-11-28T14:03:27-0000', '2026-11-28T14:03:27Z ', '', 'T', '2026-11-28T'
]

const ALPHABET = ['0', '1', '2', '3', '5', '6', '9', '-', ':', '.', '+', 'Z', 'z', 'T', 't', ' ', '\t', '\u00a0', 'x', ',', '٣']
const SEEDS = ['2024-02-29', '1999-12-31', '23:59:60Z', '12:34:56.789+05:30', '00:00:00-0800', '2024-02-29T23:59:60Z', '2026-11-28T14:03:27.512Z', '2023-06-30 23:59:60+00:00']

/** A deterministic generator (xorshift), so a failure is reproducible. */
function rng (seed: number): () => number {
  let x = seed
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 0x100000000
  }
}

function mutate (s: string, r: () => number): string {
  const pick = (): string => ALPHABET[Math.floor(r() * ALPHABET.length)] as string
  const at = Math.floor(r() * (s.length + 1))
  const op = r()
  if (op < 0.5) return s.slice(0, at) + pick() + s.slice(at + 1)
  if (op < 0.75) return s.slice(0, at) + pick() + s.slice(at)
  return s.slice(0, at) + s.slice(at + 1)
}

t.test('edge cases: the same verdicts as ajv-formats', async (t) => {
  for (const [name, mine, theirs] of pairs) {
    for (const s of EDGES) t.equal(mine(s), theirs(s), `${name} ${JSON.stringify(s)}: ${String(theirs(s))}`)
  }
})

t.test('every UTF-16 code unit as the date-time separator and as a time zone', async (t) => {
  const theirs = reference('date-time')
  const differences: string[] = []
  let separators = 0
  for (let c = 0; c <= 0xffff; c++) {
    const ch = String.fromCharCode(c)
    for (const s of [`2024-02-29${ch}12:00:00Z`, `2024-02-29T12:00:00${ch}`]) {
      const expected = theirs(s)
      if (expected && s.startsWith('2024-02-29' + ch)) separators++
      if (isDateTime(s) !== expected) differences.push(`U+${c.toString(16).padStart(4, '0')} in ${JSON.stringify(s)}: expected ${String(expected)}`)
    }
  }
  t.same(differences.slice(0, 20), [], 'the same verdicts')
  t.equal(separators, 2 + 25, 'T, t and the 25 characters \\s matches separate the date and time')
})

t.test('generated strings: the same verdicts as ajv-formats', async (t) => {
  const r = rng(0x5eed)
  let compared = 0
  let valid = 0
  const differences: string[] = []
  for (const seed of SEEDS) {
    for (let n = 0; n < 4000; n++) {
      let s = seed
      const edits = 1 + Math.floor(r() * 3)
      for (let e = 0; e < edits; e++) s = mutate(s, r)
      for (const [name, mine, theirs] of pairs) {
        compared++
        const expected = theirs(s)
        if (expected) valid++
        if (mine(s) !== expected && differences.length < 20) differences.push(`${name} ${JSON.stringify(s)}: expected ${String(expected)}`)
      }
    }
  }
  t.same(differences, [], `${compared} verdicts compared`)
  t.ok(valid > 1000, `the generated strings include valid ones (${valid})`)
})
