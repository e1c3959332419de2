import { createTestApp, type Session, type TestApp } from './app'
import { freshDatabase, type Dialect } from './databases'

/**
 * Two apps on one database, standing for two nodes with no cluster channel between them (what only the
 * database can tell them), and a dialog between two users opened through the first.
 */
export interface TwoApps {
  a: TestApp
  b: TestApp
  alice: Session
  bob: Session
  dialogId: number
  close(): Promise<void>
}

export async function twoApps(dialect: Dialect): Promise<TwoApps> {
  const fresh = await freshDatabase(dialect)
  const a = await createTestApp(dialect, {}, fresh)
  const b = await createTestApp(dialect, {}, fresh)
  const alice = await a.register()
  const bob = await a.register()
  const dialogId = (await a.call('POST', '/dialogs', { token: alice.access_token, body: { peer_user_id: bob.user.id } })).body.id
  return {
    a,
    b,
    alice,
    bob,
    dialogId,
    close: async () => {
      await a.close()
      await b.close()
      await fresh.drop()
    },
  }
}
