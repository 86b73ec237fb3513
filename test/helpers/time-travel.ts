/**
 * Moves Date.now forward for everything in the test process (the gateway's caches and an
 * in-process identity provider alike), so expiry is tested without sleeping. Restored on teardown.
 */
export function timeTravel (t: { teardown: (fn: () => void) => void }): (ms: number) => void {
  const realNow = Date.now
  let offset = 0
  Date.now = () => realNow() + offset
  t.teardown(() => { Date.now = realNow })
  return (ms) => { offset += ms }
}
