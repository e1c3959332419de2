/**
 * The ceiling: a plain Bun.serve pub/sub server (no framework, auth or storage) that speaks the same
 * frames as the chat server, plus an Elysia app whose one route returns a constant (the HTTP ceiling).
 * Tokens are `raw:<userId>:<dialogId>`; the connection subscribes to that dialog.
 * Usage: bun bench/baseline.ts <wsPort> <httpPort>
 */
import { Elysia } from 'elysia'

interface Conn {
  userId: number
  dialogId: number
}

const [wsPort, httpPort] = process.argv.slice(2).map(Number)
let nextId = 0
const seqs = new Map<number, number>()

const server = Bun.serve<Conn>({
  port: wsPort,
  hostname: '127.0.0.1',
  fetch(request, server) {
    if (server.upgrade(request, { data: { userId: 0, dialogId: 0 } })) return undefined
    return new Response('not found', { status: 404 })
  },
  websocket: {
    maxPayloadLength: 64 * 1024,
    message(ws, data) {
      const frame = JSON.parse(String(data))
      if (frame.type === 'auth') {
        const [, user, dialog] = String(frame.access_token).split(':')
        ws.data.userId = Number(user)
        ws.data.dialogId = Number(dialog)
        ws.send(JSON.stringify({ type: 'auth:ok', user_id: ws.data.userId }))
        ws.subscribe(`dialog:${ws.data.dialogId}`)
      } else if (frame.type === 'message:send') {
        const seq = (seqs.get(frame.dialog_id) ?? 0) + 1
        seqs.set(frame.dialog_id, seq)
        const message = {
          id: ++nextId,
          dialog_id: frame.dialog_id,
          seq,
          sender_id: ws.data.userId,
          client_msg_id: frame.client_msg_id,
          type: 'text',
          text: frame.text,
          created_at: new Date().toISOString(),
          status: 'sent',
        }
        ws.send(JSON.stringify({ type: 'message:ack', client_msg_id: frame.client_msg_id, message }))
        ws.publish(`dialog:${frame.dialog_id}`, JSON.stringify({ type: 'message:new', message }))
      } else if (frame.type === 'ping') ws.send('{"type":"pong"}')
    },
  },
})

new Elysia().get('/const', () => ({ dialogs: [] })).listen({ port: httpPort, hostname: '127.0.0.1' })
console.log(`baseline on ${server.port}`)
