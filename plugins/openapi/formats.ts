/**
 * The `date`, `time` and `date-time` formats (RFC 3339, section 5.6) with exactly the verdicts of
 * ajv-formats' full mode, read character by character instead of through regular expressions
 * with captures, a split and number conversions: those were a third of validating a typical JSON
 * body with one timestamp. test/plugins/openapi-formats.test.ts holds them to ajv-formats' own
 * functions on generated strings.
 *
 * As ajv-formats: `time` and `date-time` need a time zone (`Z`, `+hh`, `+hhmm`, `+hh:mm`), the
 * date and time are separated by `T`, `t` or one whitespace character, a leap second (`:60`) is
 * accepted only at 23:59 UTC, and the day must exist in its month.
 */

const DAYS = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

function isLeapYear (year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
}

/** Two ASCII digits at `i` as a number, or -1. */
function twoDigits (s: string, i: number): number {
  const a = s.charCodeAt(i) - 48
  const b = s.charCodeAt(i + 1) - 48
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1
}

function isDigit (s: string, i: number): boolean {
  const c = s.charCodeAt(i)
  return c >= 48 && c <= 57
}

/** What `\s` matches in a JavaScript regular expression. */
function isSpace (c: number): boolean {
  return (c >= 9 && c <= 13) || c === 32 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff
}

/** `yyyy-mm-dd` from `start` to `end`. */
function dateAt (s: string, start: number, end: number): boolean {
  if (end - start !== 10 || s.charCodeAt(start + 4) !== 45 || s.charCodeAt(start + 7) !== 45) return false
  const century = twoDigits(s, start)
  const years = twoDigits(s, start + 2)
  const month = twoDigits(s, start + 5)
  const day = twoDigits(s, start + 8)
  if (century < 0 || years < 0 || month < 1 || month > 12 || day < 1) return false
  return day <= (month === 2 && isLeapYear(century * 100 + years) ? 29 : DAYS[month] as number)
}

/** `hh:mm:ss[.frac]` and a time zone, from `start` to the end of `s`. */
function timeAt (s: string, start: number): boolean {
  const end = s.length
  const hour = twoDigits(s, start)
  const minute = twoDigits(s, start + 3)
  const second = twoDigits(s, start + 6)
  if (hour < 0 || minute < 0 || second < 0 || s.charCodeAt(start + 2) !== 58 || s.charCodeAt(start + 5) !== 58) return false
  let i = start + 8
  if (s.charCodeAt(i) === 46) {
    const first = ++i
    while (isDigit(s, i)) i++
    if (i === first) return false
  }
  const zone = s.charCodeAt(i)
  let sign = 1
  let zoneHour = 0
  let zoneMinute = 0
  if (zone === 90 || zone === 122) {
    i++
  } else if (zone === 43 || zone === 45) {
    sign = zone === 45 ? -1 : 1
    zoneHour = twoDigits(s, i + 1)
    if (zoneHour < 0) return false
    i += 3
    if (s.charCodeAt(i) === 58) i++
    if (i < end || s.charCodeAt(i - 1) === 58) {
      zoneMinute = twoDigits(s, i)
      if (zoneMinute < 0) return false
      i += 2
    }
  } else {
    return false
  }
  if (i !== end || zoneHour > 23 || zoneMinute > 59) return false
  // The seconds' fraction never changes a verdict: `ss.frac < 60` is `ss <= 59`.
  if (hour <= 23 && minute <= 59 && second <= 59) return true
  // A leap second: 23:59:60 in UTC.
  const utcMinute = minute - zoneMinute * sign
  const utcHour = hour - zoneHour * sign - (utcMinute < 0 ? 1 : 0)
  return (utcHour === 23 || utcHour === -1) && (utcMinute === 59 || utcMinute === -1) && second <= 60
}

/** RFC 3339 `full-date`. */
export function isDate (s: string): boolean {
  return dateAt(s, 0, s.length)
}

/** RFC 3339 `full-time` (a time zone required). */
export function isTime (s: string): boolean {
  return timeAt(s, 0)
}

/** RFC 3339 `date-time`. */
export function isDateTime (s: string): boolean {
  if (s.length < 20) return false
  const separator = s.charCodeAt(10)
  return (separator === 84 || separator === 116 || isSpace(separator)) && dateAt(s, 0, 10) && timeAt(s, 11)
}
