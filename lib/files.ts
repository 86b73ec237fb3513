/** Reading operator-supplied text files (keys, certificates, rulesets). */
import { readFileSync } from 'node:fs'

/** A UTF-8 text file without its leading byte-order mark, which some Windows editors write. */
export function readText (file: string): string {
  const text = readFileSync(file, 'utf8')
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text
}
