/**
 * A recording WebSocket upstream on 127.0.0.1, port 0: every handshake request, every message
 * received and every close code; it answers `echo:<message>` (unless `silent`) and picks the
 * `chat` subprotocol when offered. Closed by the test's teardown.
 */
import type { IncomingMessage } from 'node:http'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'

export interface WsUpstream { url: string, upgrades: IncomingMessage[], received: string[], closes: number[] }

export async function wsUpstream (t: { teardown: (fn: () => Promise<void>) => void }, opts: { silent?: boolean } = {}): Promise<WsUpstream> {
  const up: WsUpstream = { url: '', upgrades: [], received: [], closes: [] }
  const server = createServer((_req, res) => { res.end('http') })
  const wss = new WebSocketServer({ server, handleProtocols: (offered) => offered.has('chat') ? 'chat' : false })
  wss.on('connection', (socket, req) => {
    up.upgrades.push(req)
    socket.on('message', (data) => {
      up.received.push(data.toString())
      if (opts.silent !== true) socket.send(`echo:${data.toString()}`)
    })
    socket.on('close', (code) => { up.closes.push(code) })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const c of wss.clients) c.terminate()
    await new Promise<void>((resolve) => { wss.close(() => { server.close(() => { resolve() }) }) })
  })
  up.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return up
}
