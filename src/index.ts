import { loadDotenv } from './config/dotenv'

// `.env` is read here, as python-dotenv reads it, before any other module sees process.env (Bun's own
// loader is switched off: bunfig.toml, package.json's scripts; src/config/dotenv.ts says why).
const dotenv = loadDotenv()
const { main } = await import('./cli')

// Every command but `serve` ends here; `serve` keeps the process alive until SIGTERM/SIGINT.
const status = await main(process.argv.slice(2), dotenv)
if (status !== 'serving') process.exit(status)
