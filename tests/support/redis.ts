import { RedisClient } from 'bun'

/** The Redis the cluster tests join their nodes through. */
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'
const inCI = process.env.CI === 'true' || process.env.CI === '1'

async function probeRedis(): Promise<boolean> {
  const client = new RedisClient(REDIS_URL, { connectionTimeout: 3000, autoReconnect: false })
  try {
    await client.connect()
    await client.send('PING', [])
    return true
  } catch (error) {
    if (inCI) throw new Error(`CI=true but Redis at ${REDIS_URL} is unreachable: ${error}`)
    console.warn(`\n!!!!!!!!\n!!! Redis at ${REDIS_URL} is unreachable: SKIPPING every cluster test.\n!!! (${error})\n!!!!!!!!\n`)
    return false
  } finally {
    client.close()
  }
}

export const redisAvailable = await probeRedis()

/** Environment for a cluster node: this Redis, a channel of its own (tests run side by side), quick heartbeats. */
export const clusterEnv = (channel: string, heartbeatMs = 100): Record<string, string> => ({
  REDIS_URL,
  REDIS_CHANNEL: channel,
  CLUSTER_HEARTBEAT_MS: String(heartbeatMs),
})
