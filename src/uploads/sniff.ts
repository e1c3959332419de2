/** The content types recognised from a file's first bytes; anything else is application/octet-stream. */
const SIGNATURES: { type: string; test: (b: Uint8Array) => boolean }[] = [
  { type: 'image/png', test: (b) => starts(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) },
  { type: 'image/jpeg', test: (b) => starts(b, [0xff, 0xd8, 0xff]) },
  { type: 'image/gif', test: (b) => ascii(b, 0, 'GIF87a') || ascii(b, 0, 'GIF89a') },
  { type: 'image/webp', test: (b) => ascii(b, 0, 'RIFF') && ascii(b, 8, 'WEBP') },
  { type: 'application/pdf', test: (b) => ascii(b, 0, '%PDF-') },
]

/** How many leading bytes `sniff` needs. */
export const SNIFF_BYTES = 12

/** The content type the bytes show, never what the client claimed. */
export function sniff(head: Uint8Array): string {
  return SIGNATURES.find((s) => s.test(head))?.type ?? 'application/octet-stream'
}

export const isImage = (contentType: string) => contentType.startsWith('image/')

const starts = (b: Uint8Array, bytes: number[]) => b.length >= bytes.length && bytes.every((x, i) => b[i] === x)
const ascii = (b: Uint8Array, at: number, text: string) =>
  b.length >= at + text.length && [...text].every((c, i) => b[at + i] === c.charCodeAt(0))

const MAX_NAME_CHARS = 200

/**
 * A client's file name made safe to store and show: the last path segment only (either slash), no
 * control or bidirectional-override characters, no leading dots, at most 200 characters; "file" when
 * nothing is left.
 */
export function sanitizeName(raw: string | undefined): string {
  const base = (raw ?? '').split(/[\\/]/).pop() ?? ''
  const clean = base
    .replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '')
    .replace(/^[.\s]+/, '')
    .trim()
  const limited = [...clean].slice(0, MAX_NAME_CHARS).join('')
  return limited.isWellFormed() && limited !== '' ? limited : 'file'
}

/** Content-Disposition for a download: inline for images, attachment otherwise; the name in both forms (RFC 6266). */
export function contentDisposition(name: string, inline: boolean): string {
  const fallback = name.replace(/[^\x20-\x7e]|["\\%]/g, '_')
  // RFC 8187's value allows fewer characters than encodeURIComponent leaves: ' ( ) * are encoded too.
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  return `${inline ? 'inline' : 'attachment'}; filename="${fallback}"; filename*=UTF-8''${encoded}`
}
