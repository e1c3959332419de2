import { withAllocatorTuned } from './cli/allocator'

const argv = process.argv.slice(2)
// Only a server lives long enough for the allocator's setting to matter; commands start once.
if (argv.length === 0 || argv[0] === 'serve') withAllocatorTuned()
const { main } = await import('./cli')

// Every command but `serve` ends here; `serve` keeps the process alive until SIGTERM/SIGINT.
const status = await main(argv)
if (status !== 'serving') process.exit(status)
