import app from './index.html'

/** The web app at `/`: Bun bundles the page, its script and stylesheet (at start, or into the compiled binary). */
export const webRoutes = { '/': app }
