/** multipart/form-data bodies for upload tests, whole or streamed. */

export const BOUNDARY = '----chat-test-boundary-7MA4YWxkTrZu0gW'
export const MULTIPART = `multipart/form-data; boundary=${BOUNDARY}`

/** What the server reports as an upload's `sha256` (and its ETag). */
export const sha256 = (bytes: Uint8Array | string) => new Bun.CryptoHasher('sha256').update(bytes).digest('hex')

export interface Part {
  name: string
  filename?: string
  type?: string
  data: Uint8Array | string
}

const head = (p: Omit<Part, 'data'>) =>
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}\r\n` +
  (p.type ? `Content-Type: ${p.type}\r\n` : '') +
  '\r\n'

export function multipartBody(parts: Part[]): Uint8Array {
  const pieces: (string | Uint8Array)[] = []
  for (const p of parts) pieces.push(head(p), p.data, '\r\n')
  pieces.push(`--${BOUNDARY}--\r\n`)
  return new Uint8Array(Buffer.concat(pieces.map((x) => (typeof x === 'string' ? Buffer.from(x) : Buffer.from(x)))))
}

/**
 * One `file` part of `size` pseudo-random bytes, generated as it is sent (never whole in memory here
 * either); `hash` is filled in with its sha256 once the stream has ended. `pause`: stop after that many
 * bytes until `resume` is called (to crash a server mid-upload).
 */
export function streamedFile(size: number, filename = 'big.bin', options: { pause?: number } = {}) {
  const hasher = new Bun.CryptoHasher('sha256')
  const result = { hash: '', resume: () => {} }
  const chunk = 256 * 1024
  let sent = 0
  let seed = 1
  let paused = false
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(Buffer.from(head({ name: 'file', filename, type: 'application/octet-stream' })))
    },
    async pull(controller) {
      if (options.pause !== undefined && sent >= options.pause && !paused) {
        paused = true
        await new Promise<void>((resolve) => (result.resume = resolve))
      }
      if (sent >= size) {
        result.hash = hasher.digest('hex')
        controller.enqueue(Buffer.from(`\r\n--${BOUNDARY}--\r\n`))
        controller.close()
        return
      }
      const n = Math.min(chunk, size - sent)
      const bytes = new Uint8Array(n)
      const view = new Uint32Array(bytes.buffer, 0, n >> 2)
      for (let i = 0; i < view.length; i++) view[i] = seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
      hasher.update(bytes)
      sent += n
      controller.enqueue(bytes)
    },
  })
  return { stream, result }
}
