import type { Logger } from '../log/logger'
import app from './index.html'

/** A file of the bundle and the headers it is answered with. */
interface Asset {
  body: Blob
  headers: Record<string, string>
}

// The bundle's files have hashed names: a changed file is a new name, so browsers may keep them for good.
const IMMUTABLE = 'public, max-age=31536000, immutable'

/**
 * The web app: `/` and the files of its bundle, answered through the server's `fetch` so that they get
 * the request log and latency (Bun's own HTML route answers without running any JS). The bundle is the
 * one Bun's route would serve: made ahead of time inside the compiled binary (`app.files`), else once,
 * minified, on the first request for `/`.
 */
export function webApp(log: Logger) {
  let assets: Map<string, Asset> | undefined
  let loading: Promise<Map<string, Asset> | undefined> | undefined
  const load = () =>
    (loading ??= bundle().then(
      (bundled) => (assets = bundled),
      (error: unknown) => {
        log.error('web app: bundling failed', { error: error instanceof Error ? error.message : String(error) })
        return undefined
      },
    ))
  const answer = (request: Request, asset: Asset | undefined) => {
    if (!asset) return new Response('the web app could not be bundled', { status: 500 })
    if (request.headers.get('if-none-match') === asset.headers.etag) return new Response(null, { status: 304, headers: asset.headers })
    return new Response(asset.body, { headers: asset.headers })
  }
  return {
    /** The route pattern of a request for the web app (GET or HEAD of `/` or of a bundled file), else undefined. */
    route(method: string, path: string): string | undefined {
      if (method !== 'GET' && method !== 'HEAD') return undefined
      if (path === '/') return '/'
      return assets?.has(path) ? '/:asset' : undefined
    },
    /** Answers a request `route` matched. */
    serve(request: Request, path: string): Response | Promise<Response> {
      if (assets) return answer(request, assets.get(path))
      return load().then((bundled) => answer(request, bundled?.get(path)))
    },
  }
}

async function bundle(): Promise<Map<string, Asset>> {
  const assets = new Map<string, Asset>()
  const add = (path: string, body: Blob, type: string, etag: string) => {
    const page = type.startsWith('text/html')
    const asset = { body, headers: { 'content-type': type, etag, 'cache-control': page ? 'no-cache' : IMMUTABLE } }
    assets.set(path, asset)
    if (page) assets.set('/', asset)
  }
  if (app.files) {
    // In the compiled binary: embedded files, at their paths beside the page's.
    const root = app.index.slice(0, app.index.lastIndexOf('/'))
    for (const file of app.files) add(file.path.slice(root.length), Bun.file(file.path), file.headers['content-type'], file.headers.etag)
    return assets
  }
  const built = await Bun.build({
    entrypoints: [app.index],
    target: 'browser',
    minify: true,
    publicPath: '/',
    define: { 'process.env.NODE_ENV': '"production"' },
  })
  // Output paths are `./index.html`, `./chunk-….js`.
  for (const output of built.outputs) add(output.path.slice(1), output, output.type, `"${output.hash}"`)
  return assets
}
