import { Elysia, t } from 'elysia'
import { authGuard, bearer } from '../auth/guard'
import type { AuthService } from '../auth/service'
import { pathOf } from '../http/host'
import { notFound } from '../errors'
import { ParamId } from '../shared/ids'
import { UploadSchema } from './model'
import type { UploadService } from './service'
import { contentDisposition, isImage } from './sniff'

/**
 * POST /uploads: its body is streamed by the route itself, so the edge neither limits nor parses it. Elysia
 * routes `/uploads/` here too (its paths are not strict), so that is one as well.
 */
export const isUploadRequest = (request: Request) => request.method === 'POST' && /^\/uploads\/?$/.test(pathOf(request.url))

export const uploadRoutes = (auth: AuthService, uploads: UploadService) =>
  new Elysia({ tags: ['uploads'] })
    .use(authGuard(auth))
    .post(
      '/uploads',
      async ({ principal, request, set }) => {
        const upload = await uploads.upload(principal.userId, request)
        set.status = 201
        return upload
      },
      {
        auth: true,
        response: { 201: UploadSchema },
        detail: {
          summary: 'Upload a file (multipart/form-data, one part named "file")',
          description:
            'Streamed to storage, at most UPLOAD_MAX_BYTES (else 413, nothing kept). `content_type` is sniffed from the bytes ' +
            '(PNG, JPEG, GIF, WebP, PDF, else application/octet-stream). Attach it by sending a message of type image or file ' +
            'with `attachment_id`; never attached, it is removed after 24 h.',
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': {
                schema: { type: 'object', properties: { file: { type: 'string', format: 'binary' } }, required: ['file'] },
              },
            },
          },
        },
      },
    )
    .get(
      '/uploads/:upload_id',
      async ({ params, query, request, set }) => {
        // Bearer, or ?access_token= so that <img src> works.
        const principal = await auth.authenticate(bearer(request.headers.get('authorization')) ?? query.access_token)
        const upload = await uploads.forDownload(principal.userId, params.upload_id)
        const etag = `"${upload.sha256}"`
        const headers: Record<string, string> = {
          'content-type': upload.contentType,
          'x-content-type-options': 'nosniff',
          'content-disposition': contentDisposition(upload.name, isImage(upload.contentType)),
          etag,
          'cache-control': 'private',
          'accept-ranges': 'bytes',
        }
        if (matchesEtag(request.headers.get('if-none-match'), etag)) return new Response(null, { status: 304, headers })
        const requested = request.headers.get('range')
        // If-Range that is not this upload's tag (strongly compared) asks for the whole file (RFC 9110 13.1.5).
        // Ranges are this route's own on both backends (Elysia's, for a file, would take the first of several).
        const ifRange = request.headers.get('if-range')
        const range = rangeOf(ifRange === null || ifRange.trim() === etag ? requested : null, upload.size)
        // Nothing to read, from the disk or a bucket (which cannot serve a range of an empty object); any
        // range of it is past the end.
        if (upload.size === 0 && range === undefined) return new Response(new Uint8Array(0), { headers })
        const file = uploads.blobs.file?.(upload.storageKey)
        // Its row but not its bytes: a database restored without its uploads/ folder.
        if (file && !(await file.exists())) throw notFound('upload')
        // Only without any Range: Bun answers a Range on a file response by itself (If-Range unseen).
        if (file && requested === null) {
          // A whole file goes back as it is, so that Bun sends it with sendfile.
          Object.assign(set.headers, headers)
          return file
        }
        if (range === 'unsatisfiable')
          return new Response(null, { status: 416, headers: { ...headers, 'content-range': `bytes */${upload.size}` } })
        const [start, end] = range ?? [0, upload.size]
        headers['content-length'] = String(end - start)
        if (range) headers['content-range'] = `bytes ${start}-${end - 1}/${upload.size}`
        const body = file ? file.slice(start, end) : uploads.blobs.read(upload.storageKey, start, end)
        return new Response(body, { status: range ? 206 : 200, headers })
      },
      {
        params: t.Object({ upload_id: ParamId('upload_id') }),
        query: t.Object({ access_token: t.Optional(t.String({ maxLength: 4096 })) }),
        detail: {
          summary: 'Download an upload (Bearer or ?access_token=)',
          description:
            'For the uploader and the members of the dialog it was sent in; anyone else 404. `Range: bytes=…` → 206 ' +
            '(one range; several, another unit, or an If-Range other than the ETag are answered whole), past the end → 416. ' +
            'If-None-Match → 304 (weak comparison).',
        },
      },
    )

/**
 * If-None-Match as RFC 9110 compares it: weakly (a proxy that compresses makes the tag `W/"…"`), any tag of
 * a list, or `*`.
 */
function matchesEtag(header: string | null, etag: string): boolean {
  if (header === null) return false
  if (header.trim() === '*') return true
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)
}

/** A single `bytes=` range as [start, end) within `size`; undefined to send everything. */
function rangeOf(header: string | null, size: number): [number, number] | 'unsatisfiable' | undefined {
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header ?? '')
  if (!match || (match[1] === '' && match[2] === '')) return undefined
  if (match[1] === '') {
    const suffix = Number(match[2])
    if (suffix === 0 || size === 0) return 'unsatisfiable'
    return [Math.max(0, size - suffix), size]
  }
  const start = Number(match[1])
  const last = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1)
  if (start >= size) return 'unsatisfiable'
  if (last < start) return undefined
  return [start, last + 1]
}
