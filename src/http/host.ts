/**
 * Elysia finds a request's path by looking for the first `/` from index 11 of its URL, assuming
 * `http://` and a host of at least four characters. A shorter Host header (`api`, `x`, `x:1`: common
 * upstream names behind a proxy) shifts that search into the path: every route 404s, and `Host: x` +
 * `/abc/metrics` is routed as `/metrics`. A Host Bun cannot use (empty, `x/y`, `a b`, non-ASCII) leaves a
 * URL that is the bare path, which Elysia cannot route at all. Such requests are handed on under a normal
 * host; their headers (Host included) stay as sent.
 */
export function withRoutableHost(request: Request): Request {
  const url = request.url
  const pathStart = url.startsWith('/') ? 0 : url.indexOf('/', url.indexOf('//') + 2)
  if (pathStart >= 11) return request
  return new Request(`http://localhost${pathStart < 0 ? '/' : url.slice(pathStart)}`, request)
}
