/**
 * The server a Node developer would write for the same chat (the baseline of the Socket.IO bench rows):
 * socket.io 4 on node:http, better-sqlite3 in WAL with synchronous=FULL, each message in its own
 * transaction, rooms per dialog. Tokens are HMAC-signed user ids; POST /pairs?n= provisions users and
 * dialogs for the load generator. Usage: node bench/node-socketio/server.mjs <port> <database file>
 */
import Database from 'better-sqlite3'
import { createHmac } from 'node:crypto'
import { createServer } from 'node:http'
import { Server } from 'socket.io'

const [port, file] = process.argv.slice(2)
const SECRET = 'node-socketio-bench-secret'

const db = new Database(file)
db.pragma('journal_mode = WAL')
db.pragma('synchronous = FULL')
db.pragma('foreign_keys = ON')
db.pragma('busy_timeout = 5000')
db.exec(`
  create table if not exists users (id integer primary key, username text not null unique, created_at text not null);
  create table if not exists dialogs (
    id integer primary key, user_a integer not null references users(id), user_b integer not null references users(id),
    last_seq integer not null default 0, created_at text not null, unique (user_a, user_b));
  create table if not exists messages (
    id integer primary key, dialog_id integer not null references dialogs(id), seq integer not null,
    sender_id integer not null references users(id), client_msg_id text not null, type text not null, text text not null,
    created_at text not null, unique (dialog_id, seq), unique (dialog_id, sender_id, client_msg_id));
`)

const sign = (userId) => `${userId}.${createHmac('sha256', SECRET).update(String(userId)).digest('base64url')}`
const verify = (token) => {
  const userId = Number(String(token).split('.')[0])
  return Number.isInteger(userId) && token === sign(userId) ? userId : undefined
}

const insertUser = db.prepare('insert into users (username, created_at) values (?, ?) returning id')
const insertDialog = db.prepare('insert into dialogs (user_a, user_b, created_at) values (?, ?, ?) returning id')
const dialogsOf = db.prepare('select id from dialogs where user_a = ? or user_b = ?')
const membership = db.prepare('select id from dialogs where id = ? and (user_a = ? or user_b = ?)')
const existing = db.prepare('select * from messages where dialog_id = ? and sender_id = ? and client_msg_id = ?')
const nextSeq = db.prepare('update dialogs set last_seq = last_seq + 1 where id = ? returning last_seq')
const insertMessage = db.prepare(
  'insert into messages (dialog_id, seq, sender_id, client_msg_id, type, text, created_at) values (?, ?, ?, ?, ?, ?, ?) returning *',
)

const sendMessage = db.transaction((userId, { dialog_id, client_msg_id, text }) => {
  if (!membership.get(dialog_id, userId, userId)) return { error: { code: 'not_found', message: 'no such dialog' } }
  const found = existing.get(dialog_id, userId, client_msg_id)
  if (found) return { message: { ...found, status: 'sent' }, duplicate: true }
  const { last_seq } = nextSeq.get(dialog_id)
  const row = insertMessage.get(dialog_id, last_seq, userId, client_msg_id, 'text', text, new Date().toISOString())
  return { message: { ...row, status: 'sent' }, duplicate: false }
})

let users = 0
const provision = db.transaction((n) => {
  const now = new Date().toISOString()
  const pairs = []
  for (let i = 0; i < n; i++) {
    const a = insertUser.get(`u${process.pid}_${users++}`, now).id
    const b = insertUser.get(`u${process.pid}_${users++}`, now).id
    const dialogId = insertDialog.get(a, b, now).id
    pairs.push({ dialogId, senderToken: sign(a), receiverToken: sign(b) })
  }
  return pairs
})

const http = createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost')
  if (req.method === 'POST' && url.pathname === '/pairs') {
    res.writeHead(200, { 'content-type': 'application/json' })
    return res.end(JSON.stringify(provision(Number(url.searchParams.get('n') ?? 1))))
  }
  if (url.pathname === '/health') return res.end('ok')
  res.writeHead(404).end()
})

const io = new Server(http, { cors: { origin: '*' }, maxHttpBufferSize: 64 * 1024 })

io.use((socket, next) => {
  const userId = verify(socket.handshake.auth?.access_token ?? socket.handshake.auth?.token)
  if (userId === undefined) return next(new Error('unauthorized'))
  socket.data.userId = userId
  next()
})

io.on('connection', (socket) => {
  const { userId } = socket.data
  socket.join(`user:${userId}`)
  for (const { id } of dialogsOf.all(userId, userId)) socket.join(`dialog:${id}`)
  socket.emit('auth:ok', { user_id: userId })

  socket.on('message:send', (payload, ack) => {
    if (typeof payload?.dialog_id !== 'number' || typeof payload.client_msg_id !== 'string' || typeof payload.text !== 'string') {
      const error = { code: 'validation_failed', message: 'dialog_id, client_msg_id and text are required' }
      return ack ? ack({ error }) : socket.emit('error', error)
    }
    const result = sendMessage(userId, payload)
    if (result.error) return ack ? ack(result) : socket.emit('error', { ...result.error, client_msg_id: payload.client_msg_id })
    const reply = { client_msg_id: payload.client_msg_id, message: result.message }
    if (ack) ack(reply)
    else socket.emit('message:ack', reply)
    if (!result.duplicate) socket.to(`dialog:${payload.dialog_id}`).emit('message:new', { message: result.message })
  })

  socket.on('ping', (ack) => (typeof ack === 'function' ? ack({}) : socket.emit('pong')))
})

http.listen(Number(port), '127.0.0.1', () => console.log(`node socket.io chat on http://127.0.0.1:${port}`))
process.on('SIGTERM', () => {
  io.close()
  db.close()
  process.exit(0)
})
