import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import type { DatabaseTarget } from '../src/config'
import { findOrCreateDialog } from '../src/dialogs/store'
import { MessageWriter } from '../src/messages/writer'
import { Metrics } from '../src/ops/metrics'
import { openDatabase } from '../src/storage/database'
import { insertUser } from '../src/users/store'

export interface WriterBenchOptions {
  dialect: 'sqlite' | 'pg'
  synchronous: 'FULL' | 'NORMAL'
  /** Sends committed per transaction (the writer's batch bound; this many are submitted at once). */
  batch: number
  total: number
  dialogs: number
  pgAdminUrl?: string
}

export interface WriterBenchResult {
  messagesPerSec: number
  batches: number
  meanBatch: number
}

/** The project's group-commit writer, driven with `batch` sends at a time on a fresh database. */
export async function benchWriter(o: WriterBenchOptions): Promise<WriterBenchResult> {
  const { target, drop } = await freshTarget(o.dialect, o.pgAdminUrl ?? 'postgres://postgres@127.0.0.1:5432/postgres')
  const db = await openDatabase(target, { sqliteSynchronous: o.synchronous })
  try {
    const users: number[] = []
    for (let i = 0; i < o.dialogs + 1; i++) {
      const user = await db.tx((s) => insertUser(s, { username: `bench${i}`, passwordHash: 'x', createdAt: new Date() }))
      users.push(user!.id)
    }
    const dialogs: { id: number; sender: number }[] = []
    for (let i = 1; i <= o.dialogs; i++) {
      const { id } = await db.tx((s) => findOrCreateDialog(s, users[0]!, users[i]!, new Date()))
      dialogs.push({ id, sender: users[i]! })
    }
    const metrics = new Metrics()
    const writer = new MessageWriter(db, { batchMax: o.batch, batchWaitMs: 0 }, metrics)
    const text = 'x'.repeat(64)
    let n = 0
    const started = performance.now()
    while (n < o.total) {
      const round: Promise<unknown>[] = []
      for (let i = 0; i < o.batch && n < o.total; i++, n++) {
        const d = dialogs[n % dialogs.length]!
        round.push(writer.submit({ dialogId: d.id, senderId: d.sender, clientMsgId: `c${n}`, type: 'text', text }))
      }
      await Promise.all(round)
    }
    const seconds = (performance.now() - started) / 1000
    const batches = Number(/chat_write_batch_size_count (\d+)/.exec(metrics.render())?.[1] ?? 0)
    return { messagesPerSec: o.total / seconds, batches, meanBatch: o.total / batches }
  } finally {
    await db.close()
    await drop()
  }
}

async function freshTarget(dialect: 'sqlite' | 'pg', adminUrl: string): Promise<{ target: DatabaseTarget; drop: () => Promise<void> }> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'bench-writer-'))
    return { target: { dialect, path: join(dir, 'chat.db') }, drop: async () => rmSync(dir, { recursive: true, force: true }) }
  }
  const name = `bench_writer_${process.pid}_${Date.now()}`
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database ${name}`)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return {
    target: { dialect, url: url.toString() },
    drop: async () => {
      await admin.unsafe(`drop database if exists ${name} with (force)`)
      await admin.end()
    },
  }
}
