import { main } from './cli'

// Every command but `serve` ends here; `serve` keeps the process alive until SIGTERM/SIGINT.
const status = await main(process.argv.slice(2))
if (status !== 'serving') process.exit(status)
