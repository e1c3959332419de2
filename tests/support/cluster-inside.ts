import { RedisClient } from 'bun'
import { REDIS_URL } from './redis'
import type { LiveServer } from './ws'

/** What the cluster tests disturb inside a node's cluster: its Redis subscriber, and what it does with each message. */
interface ClusterInside {
  sub: RedisClient
  receive(message: string): void
}

// Cast past `private` (the hub's `cluster`, the cluster's `sub` and `receive`): nothing public lets a test
// cut one node's subscription or slow what it hears, and no production code should.
const clusterOf = (node: LiveServer) => (node.t.core.hub as unknown as { cluster: ClusterInside }).cluster

/**
 * Keeps the node's Redis subscriber connection down for `ms`, killing it again each time Bun reconnects it
 * (CLIENT KILL by its id: the other tests on this Redis keep theirs). Its publisher stays up.
 */
export async function keepSubscriberDown(node: LiveServer, ms: number): Promise<void> {
  const sub = clusterOf(node).sub
  const admin = new RedisClient(REDIS_URL)
  const until = Date.now() + ms
  try {
    while (Date.now() < until) {
      const id = await sub.send('CLIENT', ['ID']).catch(() => undefined)
      if (id !== undefined) await admin.send('CLIENT', ['KILL', 'ID', String(id)]).catch(() => {})
      await Bun.sleep(2)
    }
  } finally {
    admin.close()
  }
}

/**
 * The node hears the Redis channel `ms` late (a busy event loop, a slower link), in the same order, until
 * the returned function is called.
 */
export function lagging(node: LiveServer, ms: number): () => void {
  const cluster = clusterOf(node)
  const receive = cluster.receive.bind(cluster)
  cluster.receive = (message: string) => void setTimeout(() => receive(message), ms)
  return () => {
    cluster.receive = receive
  }
}
