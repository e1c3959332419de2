import { serveCli } from './cli'
import { freshDatabase } from './databases'
import { databaseUrl } from './server-process'

/**
 * Partitions for tests, between the server and Postgres.
 */
/**
 * A TCP proxy to Postgres that can stop forwarding while keeping its connections open: a partition.
 * `silence()` silences every connection, open or new; `silenceOpen()` only those open now, as when a
 * middlebox drops its state and new connections work again.
 */
export function partitionable(targetPort: number, listenPort = 0) {
  let silent = false
  type Side = { upstream?: import('bun').Socket<unknown>; early: Uint8Array[]; silent: boolean }
  const open = new Set<import('bun').Socket<Side>>()
  const server = Bun.listen<Side>({
    hostname: '127.0.0.1',
    port: listenPort,
    socket: {
      async open(client) {
        client.data = { early: [], silent: false }
        open.add(client)
        const upstream = await Bun.connect({
          hostname: '127.0.0.1',
          port: targetPort,
          socket: {
            data: (_, chunk) => void (silent || client.data.silent || client.write(chunk)),
            close: () => void client.end(),
            error: () => void client.end(),
          },
        })
        client.data.upstream = upstream
        for (const chunk of client.data.early.splice(0)) upstream.write(chunk)
      },
      data(client, chunk) {
        if (silent || client.data.silent) return
        if (client.data.upstream) client.data.upstream.write(chunk)
        else client.data.early.push(new Uint8Array(chunk))
      },
      close: (client) => {
        open.delete(client)
        client.data.upstream?.end()
      },
    },
  })
  return {
    port: server.port,
    silence: () => (silent = true),
    silenceOpen: () => open.forEach((client) => (client.data.silent = true)),
    stop: () => server.stop(true),
  }
}

export const partitionableOn = (listenPort: number, targetPort: number) => partitionable(targetPort, listenPort)

/** The server in its own process, on a fresh Postgres database that it reaches through a partitionable proxy. */
export async function servedBehindProxy(env: Record<string, string> = {}) {
  const fresh = await freshDatabase('pg')
  const url = new URL(databaseUrl(fresh.target))
  const proxy = partitionable(Number(url.port || 5432))
  url.port = String(proxy.port)
  const server = await serveCli({ DATABASE_URL: url.toString(), ...env })
  const close = async () => {
    server.proc.kill('SIGKILL')
    await server.proc.exited
    proxy.stop()
    await fresh.drop()
  }
  return { fresh, proxy, server, close }
}
