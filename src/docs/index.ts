import { Elysia, type AnyElysia } from 'elysia'
import pkg from '../../package.json'
import swaggerCss from 'swagger-ui-dist/swagger-ui.css' with { type: 'file' }
import swaggerJs from 'swagger-ui-dist/swagger-ui-bundle.js' with { type: 'file' }
import { asyncApiDocument } from './asyncapi'
import { openApiDocument } from './openapi'

/*
 * API documentation served by the server itself, with no CDN: Swagger UI's files come from the
 * swagger-ui-dist package (and are embedded in the compiled binary), so /docs works offline.
 */

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Chat server API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <style>body { margin: 0 } .topbar { display: none }</style>
</head>
<body>
  <p style="font-family: sans-serif; margin: 1em 2em">REST API below. WebSocket protocol: <a href="/docs/asyncapi.json">AsyncAPI document</a>.</p>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>window.ui = SwaggerUIBundle({ url: '/docs/json', dom_id: '#swagger-ui', deepLinking: true })</script>
</body>
</html>`

const asset = (path: string, type: string) => () =>
  new Response(Bun.file(path), { headers: { 'content-type': type, 'cache-control': 'public, max-age=86400' } })

/** `root` is the whole app, read when the document is first asked for (every route is registered by then). */
export const docsRoutes = (root: { app?: AnyElysia }) => {
  let openapi: unknown
  let asyncapi: unknown
  const hidden = { detail: { hide: true } }
  return new Elysia({ name: 'docs' })
    .get('/docs', () => new Response(PAGE, { headers: { 'content-type': 'text/html; charset=utf-8' } }), hidden)
    .get('/docs/json', () => (openapi ??= openApiDocument(root.app!, pkg.version)), hidden)
    .get('/docs/asyncapi.json', () => (asyncapi ??= asyncApiDocument(pkg.version)), hidden)
    .get('/docs/assets/swagger-ui.css', asset(swaggerCss, 'text/css; charset=utf-8'), hidden)
    .get('/docs/assets/swagger-ui-bundle.js', asset(swaggerJs, 'text/javascript; charset=utf-8'), hidden)
}
