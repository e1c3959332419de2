import { afterAll, beforeAll } from 'bun:test'
import { freshDatabase, type Dialect, type FreshDatabase } from './databases'
import { clusterEnv } from './redis'
import type { Session } from './app'
import { Client, startLive, type LiveServer } from './ws'

/**
 * Two nodes of one cluster for the tests of a describe block: one database, joined over Redis on a channel
 * of their own. Read `nodes.a` / `nodes.b` inside the tests (they exist once beforeAll has run).
 */
export interface TwoNodes {
  a: LiveServer
  b: LiveServer
  /** Theirs, for a third node a test starts itself. */
  database: FreshDatabase
  channel: string
}

/** `heartbeatMs`: the nodes' heartbeat (a node lets another go after three missed ones). */
export function twoNodes(dialect: Dialect, name: string, heartbeatMs?: number): TwoNodes {
  const channel = `chat-test:${name}:${process.pid}:${dialect}:${Math.random().toString(36).slice(2)}`
  const nodes = { channel } as TwoNodes
  beforeAll(async () => {
    nodes.database = await freshDatabase(dialect)
    nodes.a = await startLive(dialect, clusterEnv(channel, heartbeatMs), nodes.database)
    nodes.b = await startLive(dialect, clusterEnv(channel, heartbeatMs), nodes.database)
  }, 20_000)
  afterAll(async () => {
    await nodes.a.close()
    await nodes.b.close()
    await nodes.database.drop()
  })
  return nodes
}

/** `session`'s user connected to `node` over the JSON wire, authenticated. */
export const on = (node: LiveServer, session: Session) => Client.login(node.base, session)

/** The peer of `session`'s first dialog, as `node` answers it. */
export const peerOf = async (node: LiveServer, session: Session) =>
  (await node.t.call('GET', '/dialogs', { token: session.access_token })).body.dialogs[0].peer
