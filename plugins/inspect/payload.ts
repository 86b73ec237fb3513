/**
 * Engine inputs: the value lists of one request phase, or of several phases judged in one joint
 * run (InspectEngine.allClean), as the engine payload. Every list goes under its address
 * (addresses.ts) packed into a tree of at most 256 items per level, so the engine's container
 * limits (256 items, ~20 levels) can never hide a value.
 */
import { LIST_ADDRESSES } from './addresses.js'

const MAX_LIST = 256

/** A list of any length as nested lists of at most 256 items (depth log256(n)). */
function pack (list: string[]): unknown[] {
  let level: unknown[] = list
  while (level.length > MAX_LIST) {
    const next: unknown[] = []
    for (let i = 0; i < level.length; i += MAX_LIST) next.push(level.slice(i, i + MAX_LIST))
    level = next
  }
  return level
}

/** The payload of one phase: each non-empty list (by list number), packed under its address. */
export function packLists (lists: readonly string[][]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (let i = 0; i < lists.length; i++) {
    const list = lists[i] as string[]
    if (list.length > 0) out[LIST_ADDRESSES[i] as string] = pack(list)
  }
  return out
}

/** Appends every value of one phase's lists to `joint`'s list of its address (one run over several phases). */
export function appendLists (lists: readonly string[][], joint: Record<string, string[]>): void {
  for (let i = 0; i < lists.length; i++) {
    const list = lists[i] as string[]
    if (list.length === 0) continue
    const address = LIST_ADDRESSES[i] as string
    const values = joint[address]
    if (values === undefined) joint[address] = list.slice()
    else for (let k = 0; k < list.length; k++) values.push(list[k] as string)
  }
}

/** Packs `joint`'s lists (appendLists) to the engine's container limits. */
export function packJoint (joint: Record<string, string[]>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const address in joint) out[address] = pack(joint[address] as string[])
  return out
}
