/**
 * Raw HTTP over a TCP socket, for protocol-level attacks (framing, smuggling, odd paths) that
 * well-behaved clients refuse to send.
 */
import { connect, type Socket } from 'node:net'

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

/**
 * Writes every request of `requests` (raw HTTP/1.1, keep-alive) in one write on one connection,
 * so the server reads them together, and resolves with the responses in order (each framed by
 * its Content-Length).
 */
export async function pipelinedRequests (port: number, requests: string[], timeoutMs = 10_000): Promise<RawResponse[]> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const responses: RawResponse[] = []
    let data = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`${responses.length} of ${requests.length} responses before the timeout`))
    }, timeoutMs)
    socket.on('data', (d) => {
      data += d.toString('latin1')
      for (;;) {
        const idx = data.indexOf('\r\n\r\n')
        if (idx === -1) return
        const head = data.slice(0, idx)
        const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0)
        if (data.length < idx + 4 + length) return
        const lines = head.split('\r\n')
        const headers: Record<string, string> = {}
        for (const l of lines.slice(1)) {
          const c = l.indexOf(':')
          if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim()
        }
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0)
        responses.push({ status, headers, body: data.slice(idx + 4, idx + 4 + length), raw: data.slice(0, idx + 4 + length) })
        data = data.slice(idx + 4 + length)
        if (responses.length === requests.length) {
          clearTimeout(timer)
          socket.end()
          resolve(responses)
          return
        }
      }
    })
    socket.on('error', (err) => { clearTimeout(timer); reject(err) })
    socket.on('connect', () => { socket.write(requests.join('')) })
  })
}

export interface ExpectResponse extends RawResponse {
  /** Status codes of the interim (1xx) responses that came before the final one. */
  readonly interim: number[]
  /** Whether the body was sent (only after a `100 Continue`). */
  readonly bodySent: boolean
  /** The client's socket, left open (the test destroys it, or waits for `ended`). */
  readonly socket: Socket
  /** Resolves when the server ends the connection. */
  readonly ended: Promise<void>
}

/**
 * A client that honours `Expect: 100-continue`: sends `head` (request line and header section),
 * then waits; the body goes out only after a `100 Continue`. Resolves with the final response
 * (framed by its Content-Length) and leaves the connection open.
 */
export async function expectContinueRequest (port: number, head: string, body: Buffer = Buffer.alloc(0)): Promise<ExpectResponse> {
  const socket = connect(port, '127.0.0.1')
  const ended = new Promise<void>((resolve) => { socket.once('end', resolve); socket.once('close', resolve) })
  return await new Promise((resolve, reject) => {
    const interim: number[] = []
    let bodySent = false
    let data = ''
    socket.on('error', reject)
    socket.on('close', () => { reject(new Error(`connection closed before a final response (interim: ${interim.join(',')})`)) })
    socket.on('data', (d) => {
      data += d.toString('latin1')
      for (;;) {
        const idx = data.indexOf('\r\n\r\n')
        if (idx === -1) return
        const headText = data.slice(0, idx)
        const lines = headText.split('\r\n')
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0)
        if (status >= 100 && status < 200) {
          interim.push(status)
          data = data.slice(idx + 4)
          if (status === 100 && !bodySent) {
            bodySent = true
            socket.write(body)
          }
          continue
        }
        const headers: Record<string, string> = {}
        for (const l of lines.slice(1)) {
          const c = l.indexOf(':')
          if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim()
        }
        const length = Number(headers['content-length'] ?? 0)
        if (data.length < idx + 4 + length) return
        socket.removeAllListeners('data')
        socket.removeAllListeners('close')
        socket.on('error', () => {})
        resolve({ status, headers, body: data.slice(idx + 4, idx + 4 + length), raw: data, interim, bodySent, socket, ended })
        return
      }
    })
    socket.on('connect', () => { socket.write(head) })
  })
}
