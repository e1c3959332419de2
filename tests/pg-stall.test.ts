import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'drizzle-orm'
import postgres from 'postgres'
import { openDatabase, type OpenOptions, type PgDb } from '../src/storage/database'
import type { DatabaseTarget } from '../src/config'
import { eventually, runCli, serveCli } from './support/cli'
import { freshDatabase, pgAvailable, PG_ADMIN_URL } from './support/databases'
import { sendingPair } from './support/sending-pair'
import { servedBehindProxy } from './support/pg-proxy'
import { connect, databaseUrl, http } from './support/server-process'

/*
 * Postgres that stops answering (pg-stall.ts): connections held open and silent, a lock held longer than
 * PG_STALL_TIMEOUT_MS, Postgres over a Unix socket going away, and the writer's queue bound over REST.
 * Found by review of the first stall watch, which wedged on the retry after a drop, crashed on a Unix
 * socket's ENOENT, and left sessions behind on a busy database.
 */

setDefaultTimeout(60_000)

async function openPg(target: DatabaseTarget, options: OpenOptions): Promise<PgDb> {
  const db = await openDatabase(target, options)
  if (db.dialect !== 'pg') throw new Error('a Postgres target was expected')
  return db
}

describe.skipIf(!pgAvailable)('pg-stall: a statement issued as a dropped connection errors', () => {
  test('a query issued right after another failed with DB_STALLED settles (it hung for ever on the connection being dropped)', async () => {
    const fresh = await freshDatabase('pg')
    const db = await openPg(fresh.target, { pgPoolMax: 1, stallTimeoutMs: 500 })
    try {
      const first = db.pg.read(({ execute }) => execute(sql`select pg_sleep(2)`))
      // What any caller does on an error: try again at once (the writer's careful attempt, a client's retry).
      const second = first.then(
        () => 'first did not fail',
        () => db.pg.read(({ execute }) => execute(sql`select 1 as x`)).then(() => 'settled', () => 'settled'),
      )
      expect(await Promise.race([second, Bun.sleep(5_000).then(() => 'still pending after 5 s')])).toBe('settled')
    } finally {
      await Promise.race([db.close(), Bun.sleep(2_000)])
      await fresh.drop()
    }
  })

  test('with PG_POOL_MAX=1, sends stuck on a silenced connection are all acknowledged after PG_STALL_TIMEOUT_MS', async () => {
    const { proxy, server, close } = await servedBehindProxy({ PG_STALL_TIMEOUT_MS: '1000', PG_POOL_MAX: '1' })
    try {
      const { answers, ws, send } = await sendingPair(server.base, 'stall1')
      send('before')
      await eventually(() => answers.get('before') === 'ack', 'the first ack')
      proxy.silenceOpen()
      const burst = Array.from({ length: 10 }, (_, i) => `stalled-${i}`)
      for (const id of burst) send(id)
      await eventually(() => burst.every((id) => answers.has(id)), `an answer to every send (answered: ${[...answers.keys()]})`, 15_000)
      ws.close()
    } finally {
      await close()
    }
  })
  test('with the default pool, sends stuck on silenced connections are answered, partition after partition', async () => {
    const { proxy, server, close } = await servedBehindProxy({ PG_STALL_TIMEOUT_MS: '1000' })
    try {
      const { a, answers, ws, send } = await sendingPair(server.base, 'stall2')
      // A wedge after a drop showed in about half the rounds: four rounds.
      for (let round = 0; round < 4; round++) {
        // A few requests at once, as on any busy server (the pool opens several connections), then a quiet
        // moment longer than PG_STALL_TIMEOUT_MS, so idle connections are dropped in the same round as the stuck one.
        await Promise.all(Array.from({ length: 20 }, () => http(server.base, 'GET', `/search?q=stall`, undefined, a.access_token)))
        await Bun.sleep(1_500)
        send(`before-${round}`)
        await eventually(() => answers.get(`before-${round}`) === 'ack', `the ack before round ${round}`)
        proxy.silenceOpen()
        const burst = Array.from({ length: 10 }, (_, i) => `stalled-${round}-${i}`)
        for (const id of burst) send(id)
        await eventually(
          () => burst.every((id) => answers.has(id)),
          `round ${round}: an answer to every send (answered: ${burst.filter((id) => answers.has(id)).length} of ${burst.length})`,
          10_000,
        )
      }
      ws.close()
    } finally {
      await close()
    }
  }, 90_000)
})

describe.skipIf(!pgAvailable)('pg-stall on a healthy database that is busy (a lock held longer than PG_STALL_TIMEOUT_MS)', () => {
  test('the server sessions the app holds stay bounded by PG_POOL_MAX (dropped sockets left their sessions behind, waiting on the lock)', async () => {
    const fresh = await freshDatabase('pg')
    const pool = 3
    const db = await openPg(fresh.target, { pgPoolMax: pool, stallTimeoutMs: 500 })
    const name = new URL(databaseUrl(fresh.target)).pathname.slice(1)
    const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} })
    // A long lock, as a migration's ALTER TABLE / CREATE INDEX on another node, or VACUUM FULL, takes.
    const locker = postgres(databaseUrl(fresh.target), { max: 1, onnotice: () => {}, connection: { application_name: 'test-locker' } })
    const held = await locker.reserve()
    let maxSessions = 0
    try {
      await held`begin`
      await held`lock table users in access exclusive mode`
      const started = performance.now()
      const busy = () => performance.now() - started < 5_000
      // Requests keep coming (each waits on the lock); after an error the next one comes 50 ms later.
      const workers = Array.from({ length: pool }, async () => {
        while (busy())
          await db.pg.read(({ execute }) => execute(sql`select count(*) from users`)).catch(() => Bun.sleep(50))
      })
      while (busy()) {
        const [row] = await admin<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity where datname = ${name} and application_name <> 'test-locker'`
        maxSessions = Math.max(maxSessions, row!.n)
        await Bun.sleep(100)
      }
      await held`rollback`
      await Promise.race([Promise.all(workers), Bun.sleep(5_000)])
      // `pool` sessions waiting on the lock; one round of replaced connections at most.
      expect(maxSessions).toBeLessThanOrEqual(2 * pool)
    } finally {
      held.release()
      await locker.end()
      await admin.end()
      await Promise.race([db.close(), Bun.sleep(2_000)])
      await fresh.drop()
    }
  })
})

describe.skipIf(!pgAvailable)('pg-stall: a send waiting on a lock longer than the deadline', () => {
  test('a send answered with an error is not stored later (the dropped connection\'s session commits it once the lock goes)', async () => {
    const fresh = await freshDatabase('pg')
    const server = await serveCli({ DATABASE_URL: databaseUrl(fresh.target), PG_STALL_TIMEOUT_MS: '500' })
    const locker = postgres(databaseUrl(fresh.target), { max: 1, onnotice: () => {} })
    try {
      const { a, b, dialog, answers, ws, send } = await sendingPair(server.base, 'lock')
      const live: string[] = []
      const peer = await connect(server.base, b.access_token, (frame) => {
        if (frame.type === 'message:new') live.push(frame.message.client_msg_id)
      })
      // The dialog's row held for a while (another node's long transaction, a migration): Postgres is healthy.
      const held = await locker.reserve()
      await held`begin`
      await held`select 1 from dialogs where id = ${dialog.id} for update`
      send('behind-a-lock')
      await eventually(() => answers.has('behind-a-lock'), 'an answer to the send', 15_000).catch(() => {})
      await held`rollback`
      held.release()
      await Bun.sleep(1_500)
      const history = await http(server.base, 'GET', `/dialogs/${dialog.id}/messages?limit=10`, undefined, a.access_token)
      const stored = history.body.messages.some((m: { client_msg_id: string }) => m.client_msg_id === 'behind-a-lock')
      // Either it was acknowledged (and the peer told), or it was refused and is not there.
      const outcome = { answer: answers.get('behind-a-lock') ?? 'none in 15 s', stored, toldPeer: live.includes('behind-a-lock') }
      expect([
        { answer: 'ack', stored: true, toldPeer: true },
        { answer: 'internal', stored: false, toldPeer: false },
        { answer: 'unavailable', stored: false, toldPeer: false },
      ]).toContainEqual(outcome)
      ws.close()
      peer.close()
    } finally {
      await locker.end()
      server.proc.kill('SIGKILL')
      await server.proc.exited
      await fresh.drop()
    }
  })
})

describe.skipIf(!pgAvailable)('pg-stall socket factory: Postgres over a unix socket', () => {
  test('at start-up with no Postgres at the socket path, serve fails within seconds naming DATABASE_URL (connect_timeout is 5 s)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chat-nopg-'))
    try {
      const started = performance.now()
      const run = await runCli([], { DATABASE_URL: `postgres://postgres@/chat?host=${dir}` }, { command: [process.execPath, 'src/index.ts'] })
      const took = Math.round(performance.now() - started)
      const uncaught = (run.stderr.match(/error: connect ENOENT/g) ?? []).length
      // runCli kills the process after 20 s: it must exit at once, with the reason.
      expect({ exited: run.code !== 0 && took < 15_000, uncaught, named: /DATABASE_URL/.test(run.stderr + run.stdout) }).toEqual({
        exited: true,
        uncaught: 0,
        named: true,
      })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('when Postgres goes away (its socket file gone, as on a stop or restart), the server keeps running and answers the sends', async () => {
    const fresh = await freshDatabase('pg')
    const dir = mkdtempSync(join(tmpdir(), 'chat-pgsock-'))
    const path = join(dir, '.s.PGSQL.5432')
    // A unix socket forwarding to the test Postgres: stopping it is Postgres stopping, for this server.
    type Side = { upstream?: import('bun').Socket<unknown>; early: Uint8Array[] }
    const listener = Bun.listen<Side>({
      unix: path,
      socket: {
        async open(client) {
          client.data = { early: [] }
          const admin = new URL(PG_ADMIN_URL)
          const upstream = await Bun.connect({
            hostname: admin.hostname,
            port: Number(admin.port || 5432),
            socket: { data: (_, chunk) => void client.write(chunk), close: () => void client.end(), error: () => void client.end() },
          })
          client.data.upstream = upstream
          for (const chunk of client.data.early.splice(0)) upstream.write(chunk)
        },
        data: (client, chunk) => void (client.data.upstream ? client.data.upstream.write(chunk) : client.data.early.push(new Uint8Array(chunk))),
        close: (client) => void client.data.upstream?.end(),
      },
    })
    const name = new URL(databaseUrl(fresh.target)).pathname.slice(1)
    const server = await serveCli({ DATABASE_URL: `postgres://postgres@/${name}?host=${dir}` })
    try {
      const { answers, ws, send } = await sendingPair(server.base, 'unix')
      listener.stop(true)
      rmSync(path, { force: true })
      const ids = Array.from({ length: 3 }, (_, i) => `down-${i}`)
      for (const id of ids) send(id)
      await eventually(
        () => ids.every((id) => answers.has(id)) || server.proc.exitCode !== null,
        'an answer to every send, or the server exiting',
        20_000,
      )
      const crash = server.output().split('\n').filter((line) => /ENOENT|Bun v/.test(line)).slice(0, 3)
      expect({ exitCode: server.proc.exitCode, crash: server.proc.exitCode === null ? [] : crash }).toEqual({ exitCode: null, crash: [] })
      expect(ids.filter((id) => !answers.has(id))).toEqual([])
      ws.close()
    } finally {
      server.proc.kill('SIGKILL')
      await server.proc.exited
      listener.stop(true)
      await fresh.drop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe.skipIf(!pgAvailable)('writer queue cap over REST', () => {
  test('REST sends and read_up_to past WRITER_QUEUE_MAX answer 429 with Retry-After: 1', async () => {
    const { fresh, server, close } = await servedBehindProxy({ WRITER_QUEUE_MAX: '2', WRITER_BATCH_MAX: '1' })
    try {
      const a = (await http(server.base, 'POST', '/auth/register', { username: 'rq-a', password: 'a-secret-password' })).body
      const b = (await http(server.base, 'POST', '/auth/register', { username: 'rq-b', password: 'a-secret-password' })).body
      const dialog = (await http(server.base, 'POST', '/dialogs', { peer_user_id: b.user.id }, a.access_token)).body
      const first = await http(server.base, 'POST', `/dialogs/${dialog.id}/messages`, { client_msg_id: 'rq-0', type: 'text', text: 'x' }, a.access_token)
      expect(first.status).toBe(201)
      const bFirst = await http(server.base, 'POST', `/dialogs/${dialog.id}/read_up_to`, { last_read_message_id: first.body.id }, b.access_token)
      expect(bFirst.status).toBe(200)
      // The dialog's row locked elsewhere: the writer's batch waits on it, everything else answers.
      const locker = postgres(databaseUrl(fresh.target), { max: 1, onnotice: () => {} })
      const held = await locker.reserve()
      await held`begin`
      await held`select 1 from dialogs where id = ${dialog.id} for update`
      const post = (path: string, body: unknown, token: string) =>
        fetch(`http://${server.base}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(3_000),
        }).then((r) => ({ status: r.status, retryAfter: r.headers.get('retry-after') }), () => ({ status: 0, retryAfter: null }))
      const sends = Array.from({ length: 8 }, (_, i) => post(`/dialogs/${dialog.id}/messages`, { client_msg_id: `rq-${i + 1}`, type: 'text', text: 'x' }, a.access_token))
      await Bun.sleep(300)
      const read = await post(`/dialogs/${dialog.id}/read_up_to`, { last_read_message_id: first.body.id }, b.access_token)
      const answers = await Promise.all(sends)
      const refused = answers.filter((x) => x.status === 429)
      expect(refused.length).toBeGreaterThan(0)
      expect(refused.every((x) => x.retryAfter === '1')).toBe(true)
      expect(read).toEqual({ status: 429, retryAfter: '1' })
      await held`rollback`
      held.release()
      await locker.end()
    } finally {
      await close()
    }
  })
})
