import type { Server } from 'bun'
import { createApp, type Core } from './app'
import { recordAddress } from './http/client-address'
import { clientAddress } from './http/trust-proxy'
import { logFrames, logSockets } from './log/socket-log'
import { pathOf, withRoutableHost } from './http/host'
import { outsideLog } from './http/request-log'
import { createRealtime } from './realtime/connection'
import { CLOSE_GOING_AWAY, type ConnectionData } from './realtime/socket'
import { createSocketIo, socketIoWire } from './realtime/socketio'
import { jsonWire } from './realtime/wire'
import { webApp } from './web/routes'

/** How long shutdown waits for clients to answer the close handshake (and HTTP responses to finish). */
const CLOSE_GRACE_MS = 2_000

export interface Running {
  server: Server<ConnectionData>
  url: URL
  /** Stops accepting, commits what was received, closes sockets with 1001, closes the database. */
  shutdown(): Promise<void>
}

/** Serves the HTTP app and the WebSocket endpoints (/ws, /socket.io/: JSON, or Socket.IO with EIO=4) on one port. */
export function serve(core: Core, options: { port: number; hostname: string; reusePort?: boolean }): Running {
  const app = createApp(core)
  const realtime = createRealtime(core)
  const socketIo = createSocketIo(core, logFrames(realtime.frames, core.log))
  const web = webApp(core.log)
  const { config } = core
  // What the server answers itself gets the app's request line too.
  const requests = outsideLog(core.log, core.metrics, config.logHttpSample, config.trustProxy)
  const server = Bun.serve({
    port: options.port,
    hostname: options.hostname,
    reusePort: options.reusePort ?? false,
    // Unbounded here so that every oversize body reaches the edge, which answers the contract's JSON 413 (Bun's
    // own is bare) without reading it: an announced length is refused on arrival, a chunked body at the limit;
    // POST /uploads counts as it streams, up to UPLOAD_MAX_BYTES.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    // Not Bun's development mode, whose error page shows a failing handler's source to the client.
    development: false,
    fetch(request, server) {
      // Bun's own handler rather than Elysia's .ws(): a frame goes straight to our dispatch, no per-frame
      // context or schema layer in between.
      if (socketIo.accepts(request)) {
        const trace = requests.start(request, server)
        return requests.finish(request, '/socket.io/', trace, socketIo.fetch(request, server, trace))
      }
      const path = pathOf(request.url)
      const socketRoute = realtime.route(path)
      if (socketRoute) {
        const trace = requests.start(request, server)
        if (realtime.upgrade(request, server, trace)) return requests.finish(request, socketRoute, trace, undefined)
      }
      const webRoute = web.route(request.method, path)
      if (webRoute) return requests.finish(request, webRoute, requests.start(request, server), web.serve(request, path))
      const routable = withRoutableHost(request)
      const peer = server.requestIP(request)?.address
      if (peer) recordAddress(routable, clientAddress(config.trustProxy, peer, request.headers))
      return app.fetch(routable)
    },
    websocket: logSockets(realtime.websocket, core.log),
  })
  core.hub.attach(server, [jsonWire, socketIoWire])
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
        await core.push.stop()
        await core.db.close()
      })()),
  }
}
