import type { Server } from 'bun'
import { createApp, type Core } from './app'
import { recordAddress } from './http/client-address'
import { createRealtime } from './realtime/connection'
import { CLOSE_GOING_AWAY, type ConnectionData } from './realtime/socket'

/** How long shutdown waits for clients to answer the close handshake (and HTTP responses to finish). */
const CLOSE_GRACE_MS = 2_000

export interface Running {
  server: Server<ConnectionData>
  url: URL
  /** Stops accepting, commits what was received, closes sockets with 1001, closes the database. */
  shutdown(): Promise<void>
}

/** Serves the HTTP app and the WebSocket endpoints (/ws, /socket.io/) on one port. */
export function serve(core: Core, options: { port: number; hostname: string; reusePort?: boolean }): Running {
  const app = createApp(core)
  const realtime = createRealtime(core)
  const server = Bun.serve({
    port: options.port,
    hostname: options.hostname,
    reusePort: options.reusePort ?? false,
    // The app answers oversize bodies with the contract's 413 (the edge for most routes, reading no
    // further than MAX_BODY_BYTES; POST /uploads counting as it streams): this is only the backstop, so
    // it must let an upload of UPLOAD_MAX_BYTES and its multipart framing through.
    maxRequestBodySize: Math.max(core.config.maxBodyBytes * 4, core.config.uploadMaxBytes + 1024 * 1024),
    fetch(request, server) {
      // Bun's own handler rather than Elysia's .ws(): a frame goes straight to our dispatch, no per-frame
      // context or schema layer in between.
      if (realtime.upgrade(request, server)) return undefined
      recordAddress(request, server.requestIP(request)?.address)
      return app.fetch(request)
    },
    websocket: realtime.websocket,
  })
  core.hub.attach(server)
  core.uploads.startSweeping()
  let stopping: Promise<void> | undefined
  return {
    server,
    url: server.url,
    shutdown: () =>
      (stopping ??= (async () => {
        core.accepting = false
        core.uploads.stopSweeping()
        // Stop listening; resolves once every connection (HTTP and WebSocket) has closed.
        const closed = server.stop(false)
        // Frames already received finish (their acks go out); REST sends in flight are in the writer.
        await realtime.quiesce()
        await core.writer.drain()
        await core.hub.closeAll(CLOSE_GOING_AWAY, 'server shutting down')
        await core.hub.leave()
        await Promise.race([closed, Bun.sleep(CLOSE_GRACE_MS)])
        await server.stop(true)
        await core.writer.drain()
        await core.db.close()
      })()),
  }
}
