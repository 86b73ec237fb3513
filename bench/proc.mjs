// Process-tree accounting from /proc: a cluster primary and its workers count as one proxy.
import { readdirSync, readFileSync } from 'node:fs'

function statFields (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/**
 * Every descendant of `pid`, breadth first. The kernel here has no /proc/<pid>/task/<tid>/children
 * (CONFIG_PROC_CHILDREN), so the parent of every process is read from /proc/<n>/stat instead.
 */
export function descendants (pid) {
  const children = new Map()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let ppid
    try { ppid = Number(statFields(name)[1]) } catch { continue } // exited meanwhile
    if (!children.has(ppid)) children.set(ppid, [])
    children.get(ppid).push(Number(name))
  }
  const out = []
  const queue = [pid]
  while (queue.length > 0) {
    for (const c of children.get(queue.shift()) ?? []) { out.push(c); queue.push(c) }
  }
  return out
}

/**
 * CPU ticks of `pid` and all its descendants: utime + stime of each, plus cutime + cstime (the
 * time of children that already exited and were reaped, e.g. a replaced worker).
 */
export function treeCpuTicks (pid) {
  let ticks = 0
  for (const p of [pid, ...descendants(pid)]) {
    try {
      const f = statFields(p)
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])
    } catch {} // exited between the scan and the read
  }
  return ticks
}

/** Peak RSS (VmHWM) in MB summed over `pid` and its descendants, and how many processes that was. */
export function treePeakRssMb (pid) {
  let kb = 0
  let processes = 0
  for (const p of [pid, ...descendants(pid)]) {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))
      if (m !== null) { kb += Number(m[1]); processes++ }
    } catch {}
  }
  return { mb: processes === 0 ? NaN : kb / 1024, processes }
}
