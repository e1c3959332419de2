import { afterAll, beforeAll } from 'bun:test'
import { freshDatabase, type Dialect, type FreshDatabase } from './databases'
import { clusterEnv } from './redis'
import { startLive, type LiveServer } from './ws'

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
