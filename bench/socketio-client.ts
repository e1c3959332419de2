/**
 * The load generator's Socket.IO client: Engine.IO v4 + Socket.IO v5 frames written by hand over a plain
 * WebSocket (socket.io-client's own cost would hide the server's). It takes and gives our JSON frames,
 * so the flows in loadgen.ts run unchanged: `{"type":"x",…}` goes out as `42["x",{…}]`, and events come
 * back as `{type: "x", …}`. Messages are acknowledged by `message:ack` events, as on the JSON wire.
 */
export interface FrameSocket {
  send(frame: string): void
}

const TYPE_FIRST = '{"type":"'

/** A frame encoded by JSON.stringify with `type` first, as an event packet, by slicing (no second encode). */
export function toEvent(frame: string): string {
  const end = frame.indexOf('"', TYPE_FIRST.length)
  const rest = frame.slice(end + 1)
  return `42["${frame.slice(TYPE_FIRST.length, end)}",${rest.length === 1 ? '{}' : `{${rest.slice(1)}`}]`
}

/** Connects with the token in CONNECT; resolves after auth:ok. `onFrame` gets every later event as a frame. */
export function openSocketIo(url: string, token: string, onFrame: (frame: { type: string; [k: string]: any }) => void): Promise<FrameSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const timer = setTimeout(() => reject(new Error('connect timeout')), 30_000)
    let ready = false
    const socket: FrameSocket = { send: (frame) => ws.send(toEvent(frame)) }
    ws.onerror = () => reject(new Error(`websocket error on ${url}`))
    ws.onmessage = (event) => {
      const text = String(event.data)
      if (text.startsWith('42')) {
        const [type, frame] = JSON.parse(text.slice(2)) as [string, { type: string; [k: string]: any }]
        frame.type = type
        if (ready) return onFrame(frame)
        clearTimeout(timer)
        if (type !== 'auth:ok') return reject(new Error(`auth failed: ${text}`))
        ready = true
        resolve(socket)
      } else if (text === '2') ws.send('3')
      else if (text[0] === '0') ws.send(`40${JSON.stringify({ access_token: token })}`)
      else if (text.startsWith('44')) reject(new Error(`connect_error: ${text}`))
    }
  })
}
