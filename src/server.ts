import type { Server } from 'bun'
import { createApp, type Core } from './app'
import { recordAddress } from './http/client-address'

export interface Running {
  server: Server<unknown>
  url: URL
  /** Stops accepting, commits what was received, closes sockets, closes the database. */
  shutdown(): Promise<void>
}

/** Serves the app (and, once the realtime module attaches, the WebSocket endpoints) on one port. */
export function serve(core: Core, options: { port: number; hostname: string }): Running {
  const app = createApp(core)
  const server = Bun.serve({
    port: options.port,
    hostname: options.hostname,
    // The app answers oversize bodies with the contract's 413; this is only the backstop for abuse.
    maxRequestBodySize: core.config.maxBodyBytes * 4,
    fetch(request, server) {
      recordAddress(request, server.requestIP(request)?.address)
      return app.fetch(request)
    },
  })
  let stopping: Promise<void> | undefined
  return {
    server,
    url: server.url,
    shutdown: () =>
      (stopping ??= (async () => {
        core.accepting = false
        await server.stop(false)
        await core.writer.drain()
        await core.db.close()
      })()),
  }
}
