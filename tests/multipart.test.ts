import { describe, expect, test } from 'bun:test'
import { boundaryOf, multipart } from '../src/uploads/multipart'
import { BOUNDARY, multipartBody } from './support/multipart'

/** The body cut into pieces at the given sizes (cycled), as a stream delivers it. */
async function* pieces(body: Uint8Array, sizes: number[]) {
  let at = 0
  for (let i = 0; at < body.length; i++) {
    const n = sizes[i % sizes.length]!
    yield body.subarray(at, at + n)
    at += n
  }
}

async function parse(body: Uint8Array, sizes: number[]) {
  const parts: { name: string; filename: string | undefined; data: Buffer }[] = []
  for await (const event of multipart(pieces(body, sizes), BOUNDARY)) {
    if (event.kind === 'part') parts.push({ name: event.name, filename: event.filename, data: Buffer.alloc(0) })
    else parts.at(-1)!.data = Buffer.concat([parts.at(-1)!.data, event.chunk])
  }
  return parts.map((p) => ({ ...p, data: p.data.toString('latin1') }))
}

describe('streaming multipart parser', () => {
  // Data that nearly holds the delimiter (CRLF, dashes, a boundary prefix) must come through intact.
  const tricky = `a\r\n--${BOUNDARY.slice(0, 10)}\r\n-\r\n--\r${'x'.repeat(100)}\r\n`
  const body = multipartBody([
    { name: 'note', data: 'hello' },
    { name: 'file', filename: 'f.txt', type: 'text/plain', data: tricky },
  ])
  const expected = [
    { name: 'note', filename: undefined, data: 'hello' },
    { name: 'file', filename: 'f.txt', data: tricky },
  ]

  test('every way of cutting the body into pieces gives the same parts', async () => {
    for (const sizes of [[1], [2], [3], [7], [25], [26], [27], [64], [1, 50, 3], [body.length]]) expect(await parse(body, sizes)).toEqual(expected)
    for (let first = 1; first < body.length; first++) expect(await parse(body, [first, body.length])).toEqual(expected)
  })

  test('a body cut short, or with no closing delimiter, is refused (400)', async () => {
    await expect(parse(body.subarray(0, body.length - 10), [16])).rejects.toMatchObject({ code: 'bad_request' })
  })

  test('part headers over 16 KiB are refused (400), whether they arrive in one read or in many', async () => {
    const long = new TextEncoder().encode(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\nX-Pad: ${'h'.repeat(20 * 1024)}\r\n\r\nx\r\n--${BOUNDARY}--\r\n`,
    )
    for (const sizes of [[long.length], [1024]]) await expect(parse(long, sizes)).rejects.toMatchObject({ code: 'bad_request' })
  })

  test("a file name as browsers encode it: %22, %0D and %0A are a quote, CR and LF; other escapes stay as written", async () => {
    const named = (filename: string) =>
      new TextEncoder().encode(
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\n\r\nx\r\n--${BOUNDARY}--\r\n`,
      )
    expect((await parse(named('the %22final%22 contract.txt'), [64]))[0]!.filename).toBe('the "final" contract.txt')
    expect((await parse(named('a%0D%0Ab.txt'), [64]))[0]!.filename).toBe('a\r\nb.txt')
    expect((await parse(named('100%25 sure %41.txt'), [64]))[0]!.filename).toBe('100%25 sure %41.txt')
  })

  test('the boundary is read from the content type, quoted or not', () => {
    expect(boundaryOf(`multipart/form-data; boundary=${BOUNDARY}`)).toBe(BOUNDARY)
    expect(boundaryOf('multipart/form-data; charset=utf-8; boundary="a b"')).toBe('a b')
    expect(boundaryOf('application/json')).toBeUndefined()
  })
})
