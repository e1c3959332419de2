/**
 * Elysia finds a request's path by looking for the first `/` from index 11 of its URL, assuming a host of at
 * least four characters after `http://`. A shorter Host header (`api`, `x`, `x:1`: common upstream names
 * behind a proxy) shifts that search into the path: every route 404s, and `Host: x` + `/abc/metrics` is
 * routed as `/metrics`. Such a request is handed on under a normal host; its headers (Host included) stay.
 */
export function withRoutableHost(request: Request): Request {
  const url = request.url
  const pathStart = url.indexOf('/', url.indexOf('//') + 2)
  if (pathStart >= 11) return request
  return new Request(`http://localhost${pathStart < 0 ? '/' : url.slice(pathStart)}`, request)
}
