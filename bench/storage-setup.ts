/** A fresh, migrated database seeded with users and dialogs: what both storage contenders write into. */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import type { DatabaseTarget } from '../src/config'
import { findOrCreateDialog } from '../src/dialogs/store'
import { openDatabase } from '../src/storage/database'
import { insertUser } from '../src/users/store'

export interface Seeded {
  target: DatabaseTarget
  /** Each dialog with the member who sends in it. */
  dialogs: { id: number; sender: number }[]
  drop(): Promise<void>
}

const PG_ADMIN = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'

export async function seededDatabase(dialect: 'sqlite' | 'pg', dialogCount: number): Promise<Seeded> {
  const { target, drop } = await freshTarget(dialect)
  const db = await openDatabase(target)
  try {
    const users: number[] = []
    for (let i = 0; i <= dialogCount; i++) {
      const user = await db.tx((s) => insertUser(s, { username: `bench${i}`, passwordHash: 'x', createdAt: new Date() }))
      users.push(user!.id)
    }
    const dialogs: Seeded['dialogs'] = []
    for (let i = 1; i <= dialogCount; i++) {
      const { id } = await db.tx((s) => findOrCreateDialog(s, users[0]!, users[i]!, new Date()))
      dialogs.push({ id, sender: users[i]! })
    }
    return { target, dialogs, drop }
  } finally {
    await db.close()
  }
}

async function freshTarget(dialect: 'sqlite' | 'pg'): Promise<{ target: DatabaseTarget; drop: () => Promise<void> }> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'bench-storage-'))
    return { target: { dialect, path: join(dir, 'chat.db') }, drop: async () => rmSync(dir, { recursive: true, force: true }) }
  }
  const name = `bench_storage_${process.pid}_${Date.now()}`
  const admin = postgres(PG_ADMIN, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database ${name}`)
  await admin.end()
  const url = new URL(PG_ADMIN)
  url.pathname = `/${name}`
  return {
    target: { dialect, url: url.toString() },
    drop: async () => {
      const sql = postgres(PG_ADMIN, { max: 1, onnotice: () => {} })
      await sql.unsafe(`drop database if exists ${name} with (force)`)
      await sql.end()
    },
  }
}
