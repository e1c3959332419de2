/** A response read off a raw socket. */
export interface RawResponse {
  status: number
  headers: Record<string, string>
  text: string
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any
}

/**
 * Sends `head` (request line and headers, without the blank line) and `body` over a fresh TCP connection,
 * with `Connection: close`, and reads the whole answer. For requests no well-behaved client sends: odd Host
 * headers, lying Content-Length. Resolves undefined when the server closes without answering.
 */
export async function rawRequest(port: number, head: string, body: Uint8Array | string = '', ms = 5_000): Promise<RawResponse | undefined> {
  const chunks: Uint8Array[] = []
  const done = Promise.withResolvers<void>()
  const socket = await Bun.connect({
    hostname: '127.0.0.1',
    port,
    socket: {
      data: (_s, data) => void chunks.push(new Uint8Array(data)),
      close: () => done.resolve(),
      end: () => done.resolve(),
      error: () => done.resolve(),
    },
  })
  socket.write(`${head}\r\nConnection: close\r\n\r\n`)
  if (body.length > 0) socket.write(body)
  socket.flush()
  const timer = setTimeout(() => socket.end(), ms)
  await done.promise
  clearTimeout(timer)
  const raw = Buffer.concat(chunks).toString('latin1')
  const split = raw.indexOf('\r\n\r\n')
  if (split < 0) return undefined
  const [statusLine, ...lines] = raw.slice(0, split).split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  let text = raw.slice(split + 4)
  if (headers['transfer-encoding'] === 'chunked') text = unchunk(text)
  text = Buffer.from(text, 'latin1').toString('utf8')
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {}
  return { status: Number(statusLine!.split(' ')[1]), headers, text, json }
}

function unchunk(text: string): string {
  let out = ''
  let at = 0
  for (;;) {
    const eol = text.indexOf('\r\n', at)
    if (eol < 0) return out
    const size = parseInt(text.slice(at, eol), 16)
    if (!size) return out
    out += text.slice(eol + 2, eol + 2 + size)
    at = eol + 2 + size + 2
  }
}
