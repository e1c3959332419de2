import { afterAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { eventually, runCli, serveCli } from './support/cli'
import { freshDatabase, pgAvailable, type FreshDatabase } from './support/databases'
import { MULTIPART, multipartBody } from './support/multipart'
import { redisAvailable, REDIS_URL } from './support/redis'
import { connect, databaseUrl, http } from './support/server-process'

// Each test starts real processes (a server, CLI runs, each a Bun start-up) on a shared two-core machine.
setDefaultTimeout(90_000)

const dirs: string[] = []
const scratch = () => {
  const dir = mkdtempSync(join(tmpdir(), 'chat-cli-'))
  dirs.push(dir)
  return dir
}
const dropped: FreshDatabase[] = []
afterAll(async () => {
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }))
  await Promise.all(dropped.map((d) => d.drop()))
})
const sqliteUrl = () => `sqlite://${join(scratch(), 'chat.db')}`

describe('CLI basics', () => {
  test('--help and --version answer and exit 0 without starting a server', async () => {
    const env = { DATABASE_URL: sqliteUrl() }
    const help = await runCli(['--help'], env)
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('Usage: chat-server [command]')
    for (const command of ['serve', 'migrate', 'backup <file>', 'restore <file>', 'user create <username>', 'user disable <username>'])
      expect(help.stdout).toContain(command)
    const version = await runCli(['--version'], env)
    expect(version.code).toBe(0)
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/)
    expect(version.stdout).not.toContain('chat server on')
  })

  test('an unknown command or a missing argument: one line, exit 2', async () => {
    const unknown = await runCli(['frobnicate'], { DATABASE_URL: sqliteUrl() })
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toBe('unknown command "frobnicate"; see chat-server --help\n')
    const missing = await runCli(['backup'], { DATABASE_URL: sqliteUrl() })
    expect(missing.code).toBe(2)
    expect(missing.stderr).toBe('backup: expected backup <file>; see chat-server --help\n')
    // An unknown user action is a usage error too, found before any database is opened or created.
    const dir = scratch()
    const action = await runCli(['user', 'frobnicate', 'alice'], { DATABASE_URL: `sqlite://${join(dir, 'chat.db')}`, DATA_DIR: dir })
    expect(action.code).toBe(2)
    expect(action.stderr).toBe('user: unknown action "frobnicate", expected user create|reset-password|disable <username>; see chat-server --help\n')
    expect(existsSync(join(dir, 'chat.db'))).toBe(false)
  })

  test('migrate applies the migrations to an empty database and exits 0', async () => {
    const url = sqliteUrl()
    const run = await runCli(['migrate'], { DATABASE_URL: url })
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('migrations applied to')
    const again = await runCli(['migrate'], { DATABASE_URL: url })
    expect(again.code).toBe(0)
  })
})

test('four migrate processes at once on an empty SQLite database all succeed (BEGIN IMMEDIATE serialises them)', async () => {
  const url = sqliteUrl()
  const runs = await Promise.all([1, 2, 3, 4].map(() => runCli(['migrate'], { DATABASE_URL: url })))
  expect(runs.map((r) => [r.code, r.stderr])).toEqual([1, 2, 3, 4].map(() => [0, '']))
})

describe('start-up failures: one line naming the variable, exit 1, no stack', () => {
  test('REDIS_URL unreachable', async () => {
    const started = Date.now()
    const run = await runCli([], { DATABASE_URL: sqliteUrl(), REDIS_URL: 'redis://127.0.0.1:1' })
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/^REDIS_URL: cannot connect to redis:\/\/127\.0\.0\.1:1 within 5 s: .+\n$/)
    expect(Date.now() - started).toBeLessThan(15_000)
  })

  test('DATABASE_URL: Postgres refusing connections', async () => {
    const run = await runCli([], { DATABASE_URL: 'postgres://postgres:secret@127.0.0.1:1/chat' })
    expect(run.code).toBe(1)
    expect(run.stderr).toBe('DATABASE_URL: cannot connect to postgres://postgres:***@127.0.0.1:1/chat within 5 s: connect ECONNREFUSED 127.0.0.1:1\n')
  })

  test('DATABASE_URL: a SQLite file that cannot be created', async () => {
    const run = await runCli([], { DATABASE_URL: 'sqlite:///proc/no/such/dir/chat.db' })
    expect(run.code).toBe(1)
    expect(run.stderr.split('\n')).toHaveLength(2)
    expect(run.stderr).toStartWith('DATABASE_URL: cannot open SQLite database /proc/no/such/dir/chat.db: ')
  })

  test('PORT in use', async () => {
    const holder = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    try {
      const run = await runCli([], { DATABASE_URL: sqliteUrl(), PORT: String(holder.port) })
      expect(run.code).toBe(1)
      expect(run.stderr).toBe(`PORT ${holder.port} is in use (HOST 127.0.0.1)\n`)
    } finally {
      holder.stop(true)
    }
  })

  test('a bad variable', async () => {
    const run = await runCli([], { DATABASE_URL: sqliteUrl(), LOG_LEVEL: 'loud' })
    expect(run.code).toBe(1)
    expect(run.stderr).toBe('config error: LOG_LEVEL: expected one of debug, info, warn, error, fatal, silent, got "loud"\n')
  })

  test('LOG_LEVEL=debug adds the stack; JSON logs give a JSON line', async () => {
    const debug = await runCli([], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/chat', LOG_LEVEL: 'debug' })
    expect(debug.code).toBe(1)
    expect(debug.stderr.split('\n').length).toBeGreaterThan(2)
    const json = await runCli([], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/chat', LOG_FORMAT: 'json' })
    expect(json.code).toBe(1)
    const line = JSON.parse(json.stderr)
    expect(line.level).toBe('fatal')
    expect(line.msg).toStartWith('DATABASE_URL: cannot connect to postgres://postgres@127.0.0.1:1/chat within 5 s')
  })
})

const register = async (base: string, username: string, password = 'password-1') => {
  const res = await http(base, 'POST', '/auth/register', { username, password })
  expect(res.status).toBe(201)
  return res.body
}

describe('npm start under a process manager', () => {
  // What systemd, `docker stop` on `CMD ["npm", "start"]`, pm2 or a CI job do: SIGTERM to npm alone. npm hands it
  // to the script's shell, which must be the server itself (`exec`), or the server is left running, orphaned.
  test('SIGTERM to `npm start` stops the server gracefully, and npm exits 0', async () => {
    const dir = scratch()
    const server = await serveCli({ DATA_DIR: dir, DATABASE_URL: `sqlite://${join(dir, 'chat.db')}` }, ['npm', 'start'])
    expect((await fetch(`http://${server.base}/health/live`)).status).toBe(200)
    const code = await Promise.race([server.stop(), Bun.sleep(12_000).then(() => 'npm still running')])
    const stillServing = await fetch(`http://${server.base}/health/live`).then(
      () => true,
      () => false,
    )
    expect({ code, stillServing, logged: server.output().includes('SIGTERM: shutting down') }).toEqual({ code: 0, stillServing: false, logged: true })
  })
})

describe('backup and restore (SQLite)', () => {
  test('a backup taken under WebSocket load restores to a database holding every message acknowledged before it', async () => {
    const url = sqliteUrl()
    const file = join(scratch(), 'backup.db')
    const server = await serveCli({ DATABASE_URL: url })
    const a = await register(server.base, 'alice')
    const b = await register(server.base, 'bob')
    const dialog = await http(server.base, 'POST', '/dialogs', { peer_user_id: b.user.id }, a.access_token)
    const acked: number[] = []
    const ws = await connect(server.base, a.access_token, (frame) => {
      if (frame.type === 'message:ack') acked.push(frame.message.id)
    })
    let sending = true
    let n = 0
    const load = (async () => {
      while (sending) {
        for (let i = 0; i < 20; i++)
          ws.send(JSON.stringify({ type: 'message:send', dialog_id: dialog.body.id, client_msg_id: `m${n++}`, msg_type: 'text', text: `load ${n}` }))
        await Bun.sleep(5)
      }
    })()
    await eventually(() => acked.length > 200, 'some acks')
    const ackedBefore = [...acked]
    const run = await runCli(['backup', file], { DATABASE_URL: url })
    sending = false
    await load
    expect(run.code).toBe(0)
    expect(run.stdout).toContain(`backup written to ${file}`)
    expect(acked.length).toBeGreaterThan(ackedBefore.length)

    // Restore refuses while the server runs.
    const refused = await runCli(['restore', file], { DATABASE_URL: url })
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/^restore: a server \(pid \d+\) has .+chat\.db open; stop it first\n$/)

    ws.close()
    expect(await server.stop()).toBe(0)
    const restored = await runCli(['restore', file], { DATABASE_URL: url })
    expect(restored.code).toBe(0)
    expect(restored.stdout).toContain('restored ')

    const again = await serveCli({ DATABASE_URL: url })
    try {
      const login = await http(again.base, 'POST', '/auth/login', { username: 'alice', password: 'password-1' })
      const ids = new Set<number>()
      let after = 0
      for (;;) {
        const page = await http(again.base, 'GET', `/dialogs/${dialog.body.id}/messages?after_id=${after}&limit=100`, undefined, login.body.access_token)
        for (const m of page.body.messages) ids.add(m.id)
        if (!page.body.has_more) break
        after = page.body.messages.at(-1).id
      }
      const missing = ackedBefore.filter((id) => !ids.has(id))
      expect(missing).toEqual([])
    } finally {
      await again.stop()
    }
  })

  // deploy.md's procedure: backup on a timer; later stop, restore, start. The attachments' bytes are files
  // beside the database, and a message's delete removes its file.
  test('backup copies the attachments\' files to uploads/ beside it and restore puts them back; a file lost anyway is 404, not 500', async () => {
    const dir = scratch()
    const env = { DATABASE_URL: `sqlite://${join(dir, 'chat.db')}`, DATA_DIR: dir }
    const backups = scratch()
    const file = join(backups, 'backup.db')
    let server = await serveCli(env)
    const a = await register(server.base, 'alice')
    const b = await register(server.base, 'bob')
    const dialog = await http(server.base, 'POST', '/dialogs', { peer_user_id: b.user.id }, a.access_token)
    const bytes = new TextEncoder().encode('the numbers for May')
    const uploaded = await fetch(`http://${server.base}/uploads`, {
      method: 'POST',
      headers: { authorization: `Bearer ${a.access_token}`, 'content-type': MULTIPART },
      body: multipartBody([{ name: 'file', filename: 'may.txt', type: 'text/plain', data: bytes }]),
    })
    expect(uploaded.status).toBe(201)
    const upload = (await uploaded.json()) as { id: number }
    const path = `/dialogs/${dialog.body.id}/messages`
    const sent = await http(server.base, 'POST', path, { client_msg_id: 'f1', type: 'file', attachment_id: upload.id }, a.access_token)
    expect(sent.status).toBe(201)
    const backup = await runCli(['backup', file], env)
    expect(backup.stdout).toContain(`backup written to ${file}; 1 attachment file(s) added to ${join(backups, 'uploads')}`)
    // A second backup into the same folder shares the file: nothing to add.
    expect((await runCli(['backup', join(backups, 'later.db')], env)).stdout).toMatch(/backup written to \S+later\.db\n/)
    // The delete after the backup removes the file from DATA_DIR/uploads.
    expect((await http(server.base, 'DELETE', `${path}/${sent.body.id}`, undefined, a.access_token)).status).toBe(204)
    expect(await server.stop()).toBe(0)

    const download = async () => {
      const login = await http(server.base, 'POST', '/auth/login', { username: 'bob', password: 'password-1' })
      const page = await http(server.base, 'GET', path, undefined, login.body.access_token)
      const url = page.body.messages.find((m: { id: number }) => m.id === sent.body.id).attachment.url
      return fetch(`http://${server.base}${url}`, { headers: { authorization: `Bearer ${login.body.access_token}` } })
    }
    const restored = await runCli(['restore', file], env)
    expect(restored.stdout).toContain(`; 1 attachment file(s) put back in ${join(dir, 'uploads')}`)
    server = await serveCli(env)
    try {
      const got = await download()
      expect(got.status).toBe(200)
      expect(new Uint8Array(await got.arrayBuffer())).toEqual(bytes)
    } finally {
      expect(await server.stop()).toBe(0)
    }

    // Restored without its uploads/ folder (only the .db copied elsewhere): the message is back, its bytes are not.
    rmSync(join(backups, 'uploads'), { recursive: true })
    rmSync(join(dir, 'uploads'), { recursive: true })
    const bare = await runCli(['restore', file], env)
    expect(bare.stdout).toContain('1 named by the database were not found')
    server = await serveCli(env)
    try {
      const got = await download()
      expect(got.status).toBe(404)
      expect(((await got.json()) as { error: { code: string } }).error.code).toBe('not_found')
    } finally {
      await server.stop()
    }
  })

  test('backup refuses to overwrite a file; restore refuses a file that is not a backup', async () => {
    const url = sqliteUrl()
    expect((await runCli(['migrate'], { DATABASE_URL: url })).code).toBe(0)
    const existing = join(scratch(), 'there.db')
    await Bun.write(existing, 'x')
    const over = await runCli(['backup', existing], { DATABASE_URL: url })
    expect(over.code).toBe(1)
    expect(over.stderr).toBe(`backup: ${existing} already exists; choose a new file\n`)
    const notBackup = await runCli(['restore', existing], { DATABASE_URL: url })
    expect(notBackup.code).toBe(1)
    expect(notBackup.stderr).toStartWith(`restore: ${existing} is not a `)
  })

  /** A migrated database `chat.db` in a folder of its own, and a backup of it beside it. */
  const migratedWithBackup = async () => {
    const dir = scratch()
    const db = join(dir, 'chat.db')
    const env = { DATABASE_URL: `sqlite://${db}`, DATA_DIR: dir }
    expect((await runCli(['migrate'], env)).code).toBe(0)
    const backup = join(dir, 'backup.db')
    expect((await runCli(['backup', backup], env)).code).toBe(0)
    return { dir, db, env, backup }
  }
  const isBackupOfThisServer = (path: string) => {
    const db = new Database(path, { readonly: true })
    try {
      return db.query("SELECT 1 AS ok FROM sqlite_master WHERE name = '__drizzle_migrations'").get() !== null
    } finally {
      db.close()
    }
  }
  /** The path the success line names as the kept database, if it says the old one could not be read. */
  const keptUnreadable = (stdout: string, reason: string) => {
    const lines = stdout.trim().split('\n')
    expect(lines).toHaveLength(1)
    const match = /; the database it replaced could not be read \((.+)\) and is kept as (\S+chat\.db\.before-restore-[^\s()]+)/.exec(lines[0]!)
    expect(match?.[1]).toBe(reason)
    return match![2]!
  }

  // deploy.md: "stop the server, restore, start it … keeps the database it replaces beside it". A damaged
  // database is the main reason to restore.
  test('restore replaces a damaged database (keeping it aside), as it replaces a healthy one', async () => {
    const { dir, db, env, backup } = await migratedWithBackup()
    // The live database's header is overwritten (a bad disk, a stray write).
    const damaged = Buffer.alloc(65536, 0x5a)
    writeFileSync(db, damaged)
    const run = await runCli(['restore', backup], env)
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    const kept = keptUnreadable(run.stdout, 'file is not a database')
    expect(readFileSync(kept).equals(damaged)).toBe(true)
    expect(readdirSync(dir).filter((name) => name.endsWith('.restoring'))).toEqual([])
    expect(isBackupOfThisServer(db)).toBe(true)
  })

  // A crash can leave the file cut short with the WAL of the last writes beside it: both go aside together,
  // under names SQLite pairs, and the WAL is never applied to the restored database.
  for (const [what, size, reason] of [
    ['cut to 8 KiB', 8192, 'database disk image is malformed'],
    ['emptied', 0, 'the file is empty'],
  ] as const)
    test(`restore replaces a database ${what} beside the WAL of a crashed writer, keeping the file, its -wal and -shm aside`, async () => {
      const { dir, db, env, backup } = await migratedWithBackup()
      const writer = Bun.spawn([
        process.execPath,
        '-e',
        `import { Database } from 'bun:sqlite'
         const db = new Database(${JSON.stringify(db)})
         db.exec('PRAGMA wal_autocheckpoint = 0')
         db.exec("INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('only-in-the-wal', 0)")
         process.kill(process.pid, 'SIGKILL')`,
      ])
      await writer.exited
      const wal = readFileSync(`${db}-wal`)
      expect(wal.length).toBeGreaterThan(0)
      expect(existsSync(`${db}-shm`)).toBe(true)
      truncateSync(db, size)
      const run = await runCli(['restore', backup], env)
      expect(run.stderr).toBe('')
      expect(run.code).toBe(0)
      const kept = keptUnreadable(run.stdout, reason)
      expect(run.stdout).toContain('(with its -wal, -shm)')
      expect(statSync(kept).size).toBe(size)
      expect(readFileSync(`${kept}-wal`).equals(wal)).toBe(true)
      expect(existsSync(`${kept}-shm`)).toBe(true)
      expect(readdirSync(dir).filter((name) => name.startsWith('chat.db-') || name.endsWith('.restoring'))).toEqual([])
      const restored = new Database(db, { readonly: true })
      expect(restored.query("SELECT hash FROM __drizzle_migrations WHERE hash = 'only-in-the-wal'").get()).toBeNull()
      restored.close()
    })

  test('restore refuses a damaged backup in one line, before anything is moved', async () => {
    const { dir, db, env, backup } = await migratedWithBackup()
    const before = readFileSync(db)
    const files = readdirSync(dir).sort()
    const whole = readFileSync(backup)
    const pageSize = whole.readUInt16BE(16)
    const cases = {
      // A page in the middle overwritten: quick_check lists a problem a line.
      'a page overwritten': Buffer.concat([whole.subarray(0, 2 * pageSize), Buffer.alloc(pageSize, 0x33), whole.subarray(3 * pageSize)]),
      // Cut short (a copy that did not finish): SQLite says malformed, which is damage, not "not a database".
      'cut short': whole.subarray(0, 2 * pageSize),
    }
    for (const [what, bytes] of Object.entries(cases)) {
      writeFileSync(backup, bytes)
      const run = await runCli(['restore', backup], env)
      expect({ what, code: run.code }).toEqual({ what, code: 1 })
      expect(run.stderr).toMatch(new RegExp(`^restore: ${backup.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is damaged: [^\n]+\n$`))
      expect(readFileSync(db).equals(before)).toBe(true)
      expect(readdirSync(dir).sort()).toEqual(files)
    }
  })

  test('restore that cannot go ahead leaves no .restoring file: DATABASE_URL a folder, a database another process holds locked', async () => {
    const { dir, db, env, backup } = await migratedWithBackup()
    const holder = new Database(db)
    try {
      holder.exec('PRAGMA locking_mode = EXCLUSIVE')
      holder.exec("INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('held', 0)")
      const locked = await runCli(['restore', backup], env)
      expect(locked.code).toBe(1)
      expect(locked.stderr).toBe(`restore: another process holds a lock on ${db} (database is locked); stop it first\n`)
    } finally {
      holder.close()
    }
    expect(readdirSync(dir).filter((name) => name.endsWith('.restoring') || name.includes('before-restore'))).toEqual([])
    expect(isBackupOfThisServer(db)).toBe(true)

    const folder = join(dir, 'folder.db')
    mkdirSync(folder)
    const run = await runCli(['restore', backup], { ...env, DATABASE_URL: `sqlite://${folder}` })
    expect(run.code).toBe(1)
    expect(run.stderr).toBe(`restore: ${folder} (DATABASE_URL) is not a file\n`)
    expect(readdirSync(dir).filter((name) => name.endsWith('.restoring'))).toEqual([])
  })

  test('a backup that is a copy of a live database with its -wal beside it: restore brings the rows the -wal holds', async () => {
    const dir = scratch()
    const db = join(dir, 'chat.db')
    const url = `sqlite://${db}`
    expect((await runCli(['migrate'], { DATABASE_URL: url })).code).toBe(0)
    // A copy of a live WAL-mode database (file and -wal), as `cp data/chat.db* /backups/` makes.
    const live = new Database(db)
    live.exec('PRAGMA journal_mode=WAL')
    live.exec('PRAGMA wal_autocheckpoint=0')
    live.exec('CREATE TABLE copied (x INTEGER)')
    live.exec('INSERT INTO copied VALUES (42)')
    const backupDir = scratch()
    const backup = join(backupDir, 'copy.db')
    copyFileSync(db, backup)
    copyFileSync(`${db}-wal`, `${backup}-wal`)
    live.close()
    const check = new Database(backup, { readonly: true })
    expect(check.query('SELECT x FROM copied').all()).toEqual([{ x: 42 }])
    check.close()
    expect(existsSync(`${backup}-wal`)).toBe(true)

    const run = await runCli(['restore', backup], { DATABASE_URL: url })
    expect(run.code).toBe(0)
    const restored = new Database(db, { readonly: true })
    let rows: unknown
    try {
      rows = restored.query('SELECT x FROM copied').all()
    } catch (error) {
      rows = String(error)
    } finally {
      restored.close()
    }
    expect(rows).toEqual([{ x: 42 }])
  }, 60_000)

  test('restore into a DATA_DIR that does not exist yet (a new machine, before the first start) succeeds', async () => {
    const source = scratch()
    const made = join(source, 'chat.db')
    expect((await runCli(['migrate'], { DATABASE_URL: `sqlite://${made}` })).code).toBe(0)
    const backup = join(source, 'backup.db')
    expect((await runCli(['backup', backup], { DATABASE_URL: `sqlite://${made}` })).code).toBe(0)
    const target = join(scratch(), 'data', 'chat.db')
    const run = await runCli(['restore', backup], { DATABASE_URL: `sqlite://${target}` })
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' })
    expect(existsSync(target)).toBe(true)
  }, 60_000)
})

describe.skipIf(!pgAvailable)('Postgres', () => {
  test('backup and restore say to use pg_dump / pg_restore', async () => {
    const fresh = await freshDatabase('pg')
    dropped.push(fresh)
    const env = { DATABASE_URL: databaseUrl(fresh.target) }
    const backup = await runCli(['backup', join(scratch(), 'x')], env)
    expect(backup.code).toBe(1)
    expect(backup.stderr).toContain('back it up with pg_dump')
    const restore = await runCli(['restore', join(scratch(), 'x')], env)
    expect(restore.code).toBe(1)
    expect(restore.stderr).toContain('pg_restore')
  })

  test('four nodes started at once on an empty database all become ready', async () => {
    const fresh = await freshDatabase('pg')
    dropped.push(fresh)
    const nodes = await Promise.all([1, 2, 3, 4].map(() => serveCli({ DATABASE_URL: databaseUrl(fresh.target) })))
    try {
      for (const node of nodes) {
        const ready = await http(node.base, 'GET', '/health/ready')
        expect(ready).toEqual({ status: 200, body: { status: 'ok' } })
      }
    } finally {
      expect(await Promise.all(nodes.map((n) => n.stop()))).toEqual([0, 0, 0, 0])
    }
  })

  // The machine's Postgres listens on a Unix socket too (Debian's directory unless PG_SOCKET_DIR says otherwise).
  const socketDir = process.env.PG_SOCKET_DIR ?? '/var/run/postgresql'
  const socketThere = existsSync(join(socketDir, '.s.PGSQL.5432'))
  if (!socketThere) {
    if (process.env.CI === 'true') throw new Error(`CI=true but there is no Postgres socket in ${socketDir}`)
    console.warn(`\n!!! No Postgres socket in ${socketDir}: SKIPPING the Unix-socket DATABASE_URL test.\n`)
  }
  test.skipIf(!socketThere)('DATABASE_URL with no host and ?host=<socket directory> serves through the Unix socket', async () => {
    const fresh = await freshDatabase('pg')
    dropped.push(fresh)
    const name = new URL(databaseUrl(fresh.target)).pathname.slice(1)
    const server = await serveCli({ DATABASE_URL: `postgresql://postgres@/${name}?host=${socketDir}` })
    try {
      const alice = await register(server.base, 'alice')
      const dialogs = await http(server.base, 'GET', '/dialogs', undefined, alice.access_token)
      expect(dialogs.status).toBe(200)
      // Every connection the server holds is a local one: no client address.
      const admin = postgres(databaseUrl(fresh.target), { max: 1, onnotice: () => {} })
      try {
        const [row] = await admin<{ all: number; local: number }[]>`
          select count(*)::int as all, (count(*) filter (where client_addr is null))::int as local
          from pg_stat_activity where datname = ${name} and pid <> pg_backend_pid()`
        expect(row!.all).toBeGreaterThan(0)
        expect(row!.local).toBe(row!.all)
      } finally {
        await admin.end()
      }
    } finally {
      expect(await server.stop()).toBe(0)
    }
  })
})

describe('user commands against a running server', () => {
  const userFlow = async (env: Record<string, string>) => {
    const server = await serveCli(env)
    try {
      const created = await runCli(['user', 'create', 'carol'], env, { stdin: 'first-password\n' })
      expect(created.code).toBe(0)
      expect(created.stdout).toMatch(/created user carol \(id \d+\)/)
      const taken = await runCli(['user', 'create', 'carol'], env, { stdin: 'first-password\n' })
      expect(taken.code).toBe(1)
      expect(taken.stderr).toBe('user create: username carol is taken\n')
      const short = await runCli(['user', 'create', 'dave'], env, { stdin: 'short\n' })
      expect(short.code).toBe(1)
      expect(short.stderr).toBe('password: 8–256 characters\n')

      const first = await http(server.base, 'POST', '/auth/login', { username: 'carol', password: 'first-password' })
      expect(first.status).toBe(200)

      const reset = await runCli(['user', 'reset-password', 'carol'], env, { stdin: 'second-password\n' })
      expect(reset.code).toBe(0)
      expect(reset.stdout).toContain('password of carol reset; 1 session ended')
      expect((await http(server.base, 'GET', '/me', undefined, first.body.access_token)).status).toBe(401)
      expect((await http(server.base, 'POST', '/auth/login', { username: 'carol', password: 'first-password' })).status).toBe(401)
      const second = await http(server.base, 'POST', '/auth/login', { username: 'carol', password: 'second-password' })
      expect(second.status).toBe(200)

      let closed: { code: number } | undefined
      const ws = await connect(server.base, second.body.access_token, () => {})
      ws.addEventListener('close', (e) => (closed = { code: e.code }))
      const disabled = await runCli(['user', 'disable', 'carol'], env)
      expect(disabled.code).toBe(0)
      expect(disabled.stdout).toContain('carol disabled; 1 session ended')
      await eventually(() => closed !== undefined, 'the disabled user’s socket to close')
      expect(closed!.code).toBe(4401)
      const refused = await http(server.base, 'POST', '/auth/login', { username: 'carol', password: 'second-password' })
      expect(refused.status).toBe(401)
      expect(refused.body.error.code).toBe('invalid_credentials')
      expect((await http(server.base, 'GET', '/me', undefined, second.body.access_token)).status).toBe(401)

      const missing = await runCli(['user', 'disable', 'nobody'], env)
      expect(missing.code).toBe(1)
      expect(missing.stderr).toBe('user disable: no user named nobody\n')
    } finally {
      await server.stop()
    }
  }

  test('create, reset-password, disable (single node: sockets close by the periodic session check)', async () => {
    await userFlow({ DATABASE_URL: sqliteUrl(), SESSION_CHECK_MS: '200' })
  })

  test.skipIf(!redisAvailable)('in a cluster the disable reaches the node over Redis at once (no periodic check needed)', async () => {
    await userFlow({
      DATABASE_URL: sqliteUrl(),
      SESSION_CHECK_MS: '3600000',
      REDIS_URL,
      REDIS_CHANNEL: `cli-test-${process.pid}-${Date.now()}`,
    })
  })
})

test('the server process leaves no record of itself once stopped', async () => {
  const dir = scratch()
  const server = await serveCli({ DATABASE_URL: `sqlite://${join(dir, 'chat.db')}` })
  expect(existsSync(join(dir, 'chat.db.servers', String(server.proc.pid)))).toBe(true)
  expect(await server.stop()).toBe(0)
  expect(existsSync(join(dir, 'chat.db.servers', String(server.proc.pid)))).toBe(false)
})
