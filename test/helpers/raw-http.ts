/**
 * Raw HTTP over a TCP socket, for protocol-level attacks (framing, smuggling, odd paths) that
 * well-behaved clients refuse to send.
 */
import { connect } from 'node:net'

export interface RawResponse {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
  readonly raw: string
}

/** Sends `payload` as is and resolves with the first response (or status 0 when the socket closes without one). */
export async function rawRequest (port: number, payload: string | Buffer, opts: { timeoutMs?: number, keepOpenMs?: number } = {}): Promise<RawResponse> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let data = ''
    const timer = setTimeout(() => { socket.destroy(); finish() }, opts.timeoutMs ?? 5000)
    function finish (): void {
      clearTimeout(timer)
      const idx = data.indexOf('\r\n\r\n')
      const head = idx === -1 ? data : data.slice(0, idx)
      const lines = head.split('\r\n')
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0)
      const headers: Record<string, string> = {}
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':')
        if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim()
      }
      resolve({ status, headers, body: idx === -1 ? '' : data.slice(idx + 4), raw: data })
    }
    socket.on('data', (d) => {
      data += d.toString('latin1')
      const idx = data.indexOf('\r\n\r\n')
      if (idx !== -1) {
        const m = /content-length:\s*(\d+)/i.exec(data.slice(0, idx))
        if (m !== null && data.length >= idx + 4 + Number(m[1])) { socket.destroy(); finish() }
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => finish())
    socket.on('connect', () => { socket.write(payload) })
    socket.on('timeout', () => reject(new Error('timeout')))
  })
}
