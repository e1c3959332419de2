/**
 * The uploads ceiling: a plain Bun.serve that writes each request body to a file (POST /) and sends a
 * file back (GET /<n>). No framework, auth, parsing, hashing or database. `POST /?durable` also
 * fdatasyncs the file before answering, as the server does: the durable baseline.
 * Usage: bun bench/uploads-ceiling.ts <port> <dir>
 */
import { open } from 'node:fs/promises'
import { join } from 'node:path'

const [port, dir] = process.argv.slice(2)
let next = 0

Bun.serve({
  port: Number(port),
  hostname: '127.0.0.1',
  maxRequestBodySize: 64 * 1024 * 1024,
  async fetch(request) {
    if (request.method === 'POST') {
      const id = ++next
      const path = join(dir!, String(id))
      await Bun.write(path, request)
      if (request.url.endsWith('?durable')) {
        const file = await open(path, 'r+')
        await file.datasync()
        await file.close()
      }
      return Response.json({ id }, { status: 201 })
    }
    const id = new URL(request.url).pathname.slice(1)
    if (id === 'health') return new Response('ok')
    return new Response(Bun.file(join(dir!, id)))
  },
})
