import { AppError } from '../errors'

export type PartEvent = { kind: 'part'; name: string; filename: string | undefined } | { kind: 'data'; chunk: Uint8Array }

const CRLF = Buffer.from('\r\n')
const HEADERS_END = Buffer.from('\r\n\r\n')
const MAX_HEADER_BYTES = 16 * 1024

const malformed = (why: string) => new AppError('bad_request', `malformed multipart body: ${why}`)

/** The boundary of a multipart/form-data content type, or undefined. */
export function boundaryOf(contentType: string | null): string | undefined {
  const match = /^\s*multipart\/form-data\s*;(?:.*;)?\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType ?? '')
  return match?.[1] ?? match?.[2]
}

/**
 * A multipart/form-data body as it streams in: each part's start (its field name and file name), then
 * its bytes in chunks. Nothing is held beyond one chunk and a delimiter's length, so a file of any size
 * passes through in constant memory; the consumer's pace (awaiting its writes) is the stream's pace.
 */
export async function* multipart(body: AsyncIterable<Uint8Array>, boundary: string): AsyncGenerator<PartEvent> {
  // The first delimiter has no CRLF before it; one is prepended so every delimiter looks alike.
  const delimiter = Buffer.from(`\r\n--${boundary}`)
  let buffer: Buffer = Buffer.from(CRLF)
  let state: 'preamble' | 'delimiter' | 'headers' | 'body' | 'done' = 'preamble'

  for await (const chunk of body) {
    const incoming = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    if (state === 'body' && buffer.length > 0 && incoming.length >= delimiter.length) {
      // Inside a part only the held-back tail (shorter than a delimiter) and the start of the new chunk can
      // hide a delimiter between them: look there, rather than copy every chunk behind the tail.
      const bridge = join(buffer, incoming.subarray(0, delimiter.length - 1))
      const at = bridge.indexOf(delimiter)
      if (at >= 0 && at < buffer.length) {
        if (at > 0) yield { kind: 'data', chunk: buffer.subarray(0, at) }
        buffer = incoming.subarray(at + delimiter.length - buffer.length)
        state = 'delimiter'
      } else {
        yield { kind: 'data', chunk: buffer }
        buffer = incoming
      }
    } else buffer = buffer.length === 0 ? incoming : join(buffer, incoming)
    for (;;) {
      if (state === 'preamble' || state === 'body') {
        const at = buffer.indexOf(delimiter)
        // Up to where a delimiter could still begin, the bytes are the part's (or the preamble's).
        const safe = at >= 0 ? at : Math.max(0, buffer.length - delimiter.length + 1)
        if (state === 'body' && safe > 0) yield { kind: 'data', chunk: buffer.subarray(0, safe) }
        if (at < 0) {
          buffer = buffer.subarray(safe)
          break
        }
        buffer = buffer.subarray(at + delimiter.length)
        state = 'delimiter'
      } else if (state === 'delimiter') {
        if (buffer.length < 2) break
        if (buffer[0] === 0x2d && buffer[1] === 0x2d) {
          state = 'done'
          break
        }
        const eol = buffer.indexOf(CRLF)
        if (eol < 0) {
          if (buffer.length > 256) throw malformed('no line end after a delimiter')
          break
        }
        // Transport padding (spaces, tabs) may follow a delimiter.
        if (!/^[ \t]*$/.test(buffer.subarray(0, eol).toString('latin1'))) throw malformed('bad delimiter')
        buffer = buffer.subarray(eol + 2)
        state = 'headers'
      } else if (state === 'headers') {
        const end = buffer.indexOf(HEADERS_END)
        // A part with no headers at all starts straight away with its body.
        if (buffer[0] === 0x0d && buffer[1] === 0x0a) {
          buffer = buffer.subarray(2)
          state = 'body'
          yield { kind: 'part', name: '', filename: undefined }
          continue
        }
        // Bounded however they arrived: whole in one read, or still coming.
        if ((end < 0 ? buffer.length : end) > MAX_HEADER_BYTES) throw malformed('part headers too long')
        if (end < 0) break
        const part = partOf(buffer.subarray(0, end).toString('utf8'))
        buffer = buffer.subarray(end + HEADERS_END.length)
        state = 'body'
        yield { kind: 'part', ...part }
      } else break
    }
    if ((state as string) === 'done') return
  }
  if ((state as string) !== 'done') throw malformed('the body ended before its closing delimiter')
}

/** Two buffers as one (Buffer.concat is several times slower in Bun for this). */
function join(a: Buffer, b: Uint8Array): Buffer {
  const joined = Buffer.allocUnsafe(a.length + b.byteLength)
  joined.set(a)
  joined.set(b, a.length)
  return joined
}

function partOf(headers: string): { name: string; filename: string | undefined } {
  for (const line of headers.split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon < 0 || line.slice(0, colon).trim().toLowerCase() !== 'content-disposition') continue
    const params = new Map<string, string>()
    // Browsers send quotes in names as %22 and backslashes as they are (no escapes inside the quotes).
    for (const m of line.slice(colon + 1).matchAll(/;\s*([\w*.-]+)\s*=\s*(?:"([^"]*)"|([^;]*))/g))
      params.set(m[1]!.toLowerCase(), m[2] ?? m[3]!.trim())
    const extended = params.get('filename*')
    // The HTML form encoding escapes exactly these three in a file's name: `"`, CR and LF.
    let filename = params.get('filename')?.replace(/%(22|0D|0A)/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    if (extended) {
      const encoded = /^utf-8'[^']*'(.*)$/i.exec(extended)?.[1]
      try {
        if (encoded !== undefined) filename = decodeURIComponent(encoded)
      } catch {
        // A badly encoded extended name: keep the plain one.
      }
    }
    return { name: params.get('name') ?? '', filename }
  }
  return { name: '', filename: undefined }
}
