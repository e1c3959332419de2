/**
 * Elysia finds a request's path by looking for the first `/` from index 11 of its URL, assuming
 * `http://` and a host of at least four characters. A shorter Host header (`api`, `x`, `x:1`: common
 * upstream names behind a proxy) shifts that search into the path: every route 404s, and `Host: x` +
 * `/abc/metrics` is routed as `/metrics`. A Host Bun cannot use (empty, `x/y`, `a b`, non-ASCII) leaves a
 * URL that is the bare path, which Elysia cannot route at all; one like `$$$]` makes the URL unparsable. Such requests are handed on under a normal
 * host; their headers (Host included) stay as sent.
 */
export function withRoutableHost(request: Request): Request {
  const url = request.url
  const pathStart = pathStartOf(url)
  // A host of four characters or more that is still no valid host (`$$$]`) would break every `new URL` after.
  if (pathStart >= 11 && URL.canParse(url)) return request
  return new Request(`http://localhost${pathStart < 0 ? '/' : url.slice(pathStart)}`, request)
}

/** Where the path begins in a request's URL (-1: none), without parsing it: its host may be no valid host. */
const pathStartOf = (url: string) => (url.startsWith('/') ? 0 : url.indexOf('/', url.indexOf('//') + 2))

/** A request's path without its query, for any Host header (`new URL` throws on one like `$$$]`). */
export function pathOf(url: string): string {
  const start = pathStartOf(url)
  if (start < 0) return '/'
  const query = url.indexOf('?', start)
  return url.slice(start, query < 0 ? undefined : query)
}

/** A request's query from its `?` ('' when none), for any Host header. */
export function queryOf(url: string): string {
  const start = pathStartOf(url)
  const query = start < 0 ? -1 : url.indexOf('?', start)
  return query < 0 ? '' : url.slice(query)
}
