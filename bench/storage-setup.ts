/** A fresh, migrated database seeded with users and dialogs: what both storage contenders write into. */
import type { DatabaseTarget } from '../src/config'
import { findOrCreateDialog } from '../src/dialogs/store'
import { openDatabase } from '../src/storage/database'
import { insertUser } from '../src/users/store'
// The tests' scratch databases (a temporary file, or a Postgres database created and dropped; TEST_PG_URL).
import { freshDatabase } from '../tests/support/databases'

export interface Seeded {
  target: DatabaseTarget
  /** Each dialog with the member who sends in it. */
  dialogs: { id: number; sender: number }[]
  /** The user who is the other member of every dialog. */
  owner: number
  drop(): Promise<void>
}

export async function seededDatabase(dialect: 'sqlite' | 'pg', dialogCount: number): Promise<Seeded> {
  const { target, drop } = await freshDatabase(dialect)
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
    return { target, dialogs, owner: users[0]!, drop }
  } finally {
    await db.close()
  }
}
